using System.CommandLine;
using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Generation;
using PeftSharp.IO;
using PeftSharp.Models;
using PeftSharp.Tokenization;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft generate --model DIR [--adapter [NAME=]DIR] [--prompt TEXT [--prompt-adapter NAME]]… [--hotswap [NAME=]DIR]… [--hotswap-rank R] | --chat …</c>:
/// text generation with a KV cache, streamed to the terminal; <c>--json</c> prints one object with the prompt ids,
/// generated ids and text. Several prompts run as one batch (a JSON array); with --prompt-adapter each row uses its own
/// adapter. Each --hotswap replaces a loaded adapter's weights in place and generates the same prompts again;
/// --hotswap-rank first zero-pads the replaced adapters so that larger ranks fit.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face model folder (causal LM) with tokenizer.json.", Required = true };
        var adapters = new Option<string[]>("--adapter")
        {
            Description = "PEFT adapter folder to apply (repeatable; all are active). NAME=DIR names it, for --prompt-adapter.",
        };
        var hotswap = new Option<string[]>("--hotswap")
        {
            Description = "After generating, replace the loaded adapter's weights in place with this adapter folder's (PEFT hotswap: same method and "
                + "targets, rank at most the loaded one or --hotswap-rank) and generate the same prompts again (repeatable; NAME=DIR picks the adapter when several are loaded).",
        };
        var hotswapRank = new Option<int?>("--hotswap-rank")
        {
            Description = "Zero-pad the adapter(s) --hotswap replaces to this rank before generating (output unchanged), so adapters of rank up to it "
                + "can be swapped in (PEFT's prepare_model_for_compiled_hotswap target_rank).",
        };
        var merge = new Option<bool>("--merge") { Description = "Merge the adapters into the weights first (same greedy output, faster)." };
        var prompt = new Option<string[]>("--prompt") { Description = "The prompt text (BOS is added as the tokenizer says); repeat it to generate for several prompts in one batch." };
        var promptAdapter = new Option<string[]>("--prompt-adapter")
        {
            Description = "The adapter of each --prompt, in order (repeat once per prompt; __base__ for none): one batch, each row with its adapter.",
        };
        var chat = new Option<bool>("--chat") { Description = "Interactive chat on stdin using the model's chat template." };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens to generate at most.", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature; 0 is greedy (argmax).", DefaultValueFactory = _ => 0 };
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens (0: off)." };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling mass (1: off).", DefaultValueFactory = _ => 1.0 };
        var minP = new Option<double>("--min-p") { Description = "Drop tokens below min_p × the top probability (0: off)." };
        var repetition = new Option<double>("--repetition-penalty") { Description = "CTRL repetition penalty (1: off).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long?>("--seed") { Description = "Seed for sampling." };
        var stops = new Option<string[]>("--stop") { Description = "Stop when the text contains this string (repeatable)." };
        var truncate = new Option<bool>("--truncate-prompt") { Description = "Keep the end of a prompt longer than the context instead of failing." };
        var json = new Option<bool>("--json") { Description = "Print {prompt_ids, generated_ids, text, stop_reason} as JSON instead of streaming." };
        var device = CommonOptions.Device();
        var cmd = new Command("generate", "Generate text with a causal LM (and adapters), streaming the output.")
        {
            model, adapters, hotswap, hotswapRank, merge, prompt, promptAdapter, chat, maxNew, temperature, topK, topP, minP, repetition, seed, stops, truncate, json, device,
        };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var dir = parse.GetValue(model)!.FullName;
            var tokenizer = HfTokenizer.FromFolder(dir);
            var (adapterDirs, adapterNames) = ParseAdapters(parse.GetValue(adapters) ?? []);
            var swaps = ParseNamedDirs(parse.GetValue(hotswap) ?? []);
            var rowAdapters = parse.GetValue(promptAdapter) ?? [];
            if (rowAdapters.Length > 0 && parse.GetValue(merge))
            {
                throw new PeftException("--prompt-adapter runs each prompt with its own adapter; it cannot be combined with --merge");
            }
            var padRank = parse.GetValue(hotswapRank);
            CheckHotSwapFlags(swaps, adapterDirs.Length, parse.GetValue(merge), parse.GetValue(chat), padRank);
            var (net, peft) = ModelLoading.Load(dir, adapterDirs, parse.GetValue(merge), CommonOptions.ParseDevice(parse.GetValue(device)), adapterNames);
            using var __ = net;
            var t = parse.GetValue(temperature);
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                DoSample = t > 0,
                Temperature = t > 0 ? t : 1.0,
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                MinP = parse.GetValue(minP),
                RepetitionPenalty = parse.GetValue(repetition),
                Seed = parse.GetValue(seed),
            };
            var generation = new TextGeneration(net, tokenizer);
            var stopStrings = parse.GetValue(stops) ?? [];
            if (parse.GetValue(chat))
            {
                return ChatLoop(generation, tokenizer, options, stopStrings);
            }
            var prompts = parse.GetValue(prompt) is { Length: > 0 } given ? given : throw new PeftException("give --prompt TEXT or --chat");
            prompts = [.. prompts.Select(p => FitToContext(p, tokenizer, net, options.MaxNewTokens, parse.GetValue(truncate)))];
            var pass = new GeneratePass(generation, peft, prompts, rowAdapters, options, stopStrings);
            pass.Validate();
            if (swaps.Length > 0)
            {
                var loaded = adapterDirs.Select((d, i) => (Name: ModelLoading.AdapterName(adapterNames, i), Dir: d.ToString())).ToList();
                var targets = swaps.Select(s => (Target: SwapTarget(s.Name, s.Dir, [.. loaded.Select(l => l.Name)]), s.Dir)).ToList();
                // A missing folder or a bad config fails before any generation; shapes are checked at each swap.
                foreach (var (_, swapDir) in targets)
                {
                    PeftAdapterFiles.ReadConfig(swapDir);
                }
                if (padRank is int rank)
                {
                    PadForHotSwap(peft!, rank, [.. targets.Select(x => x.Target).Distinct()], loaded);
                }
                pass.RunHotSwaps(peft!, loaded.First(l => l.Name == targets[0].Target), targets, parse.GetValue(json));
                return 0;
            }
            if (parse.GetValue(json))
            {
                Console.WriteLine(pass.Json().ToJsonString(CliJson.Options));
                return 0;
            }
            pass.Print();
            return 0;
        }));
        return cmd;
    }

    /// <summary><c>NAME=DIR</c> or <c>DIR</c> per --adapter value; names must be distinct.</summary>
    private static (DirectoryInfo[] Dirs, string?[] Names) ParseAdapters(string[] values)
    {
        var parsed = ParseNamedDirs(values);
        var duplicate = parsed.Where(p => p.Name is not null).GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new PeftException($"--adapter: the name '{duplicate.Key}' is given twice");
        }
        return ([.. parsed.Select(p => new DirectoryInfo(p.Dir))], [.. parsed.Select(p => p.Name)]);
    }

    /// <summary><c>NAME=DIR</c> or <c>DIR</c>; an existing folder whose path contains '=' stays a folder.</summary>
    private static (string? Name, string Dir)[] ParseNamedDirs(string[] values) =>
    [
        .. values.Select(v => v.IndexOf('=', StringComparison.Ordinal) is var eq && eq > 0 && !Directory.Exists(v)
            ? (v[..eq], v[(eq + 1)..])
            : ((string?)null, v)),
    ];

    private static void CheckHotSwapFlags((string? Name, string Dir)[] swaps, int adapterCount, bool merge, bool chat, int? padRank)
    {
        if (padRank is not null && swaps.Length == 0)
        {
            throw new PeftException("--hotswap-rank pads the adapter that --hotswap replaces; give --hotswap DIR too");
        }
        if (padRank is < 1)
        {
            throw new PeftException($"--hotswap-rank must be >= 1, got {padRank}");
        }
        if (swaps.Length == 0)
        {
            return;
        }
        if (adapterCount == 0)
        {
            throw new PeftException("--hotswap replaces the weights of a loaded adapter: load one with --adapter DIR first");
        }
        if (merge)
        {
            throw new PeftException("--hotswap swaps adapter weights in place; it cannot be combined with --merge (merged weights have no adapter to swap)");
        }
        if (chat)
        {
            throw new PeftException("--hotswap generates the --prompt texts again after each swap; it cannot be combined with --chat");
        }
    }

    /// <summary>Pads each swapped adapter to <paramref name="rank"/>; a rank below the loaded one names the adapter's folder.</summary>
    private static void PadForHotSwap(PeftModel peft, int rank, string[] targets, IReadOnlyList<(string Name, string Dir)> loaded)
    {
        foreach (var target in targets)
        {
            try
            {
                peft.PrepareForHotSwap(rank, target);
            }
            catch (PeftException e)
            {
                throw new PeftException($"--hotswap-rank {rank}: {loaded.First(l => l.Name == target).Dir}: {e.Message}", e);
            }
        }
    }

    /// <summary>The adapter a --hotswap value replaces: its NAME, or the only loaded adapter.</summary>
    private static string SwapTarget(string? name, string dir, IReadOnlyList<string> loaded)
    {
        if (name is not null)
        {
            return loaded.Contains(name)
                ? name
                : throw new PeftException($"--hotswap {name}={dir}: no adapter '{name}' is loaded; loaded: {string.Join(", ", loaded)}");
        }
        return loaded.Count == 1
            ? loaded[0]
            : throw new PeftException($"--hotswap {dir}: {loaded.Count} adapters are loaded ({string.Join(", ", loaded)}); name the one to replace with --hotswap NAME=DIR");
    }

    /// <summary>A prompt that leaves no room for the new tokens is an error, or is cut from the front when asked.</summary>
    private static string FitToContext(string text, HfTokenizer tokenizer, PretrainedModel model, int maxNewTokens, bool truncate)
    {
        var context = model.Config.Raw["max_position_embeddings"] ?? model.Config.Raw["n_positions"];
        if (context is not JsonValue v || !v.TryGetValue<int>(out var limit))
        {
            return text;
        }
        var ids = tokenizer.Encode(text);
        if (ids.Count + maxNewTokens <= limit)
        {
            return text;
        }
        if (!truncate)
        {
            throw new PeftException($"the prompt has {ids.Count} tokens; with --max-new-tokens {maxNewTokens} that exceeds the context of {limit}; shorten it or pass --truncate-prompt");
        }
        var keep = Math.Max(1, limit - maxNewTokens);
        return tokenizer.Decode(ids.Skip(ids.Count - keep), skipSpecialTokens: true);
    }

    private static int ChatLoop(TextGeneration generation, HfTokenizer tokenizer, GenerationOptions options, IReadOnlyList<string> stops)
    {
        var template = tokenizer.ChatTemplate is { } source
            ? Tokenization.ChatTemplates.ChatTemplate.Parse(source)
            : throw new PeftException("this model has no chat_template in tokenizer_config.json; use --prompt");
        var history = new List<Tokenization.ChatTemplates.ChatMessage>();
        Console.Error.WriteLine("chat: type a message, an empty line ends.");
        while (Console.ReadLine() is { Length: > 0 } line)
        {
            history.Add(new("user", line));
            var extra = new Dictionary<string, object?>
            {
                ["bos_token"] = tokenizer.BosTokenId is int b ? tokenizer.TokenToString(b) : null,
                ["eos_token"] = tokenizer.EosTokenId is int e ? tokenizer.TokenToString(e) : null,
            };
            var prompt = template.Render(history, addGenerationPrompt: true, extra);
            var reply = generation.Generate(prompt, options, stops, piece => Console.Write(piece));
            Console.WriteLine();
            history.Add(new("assistant", reply.Text));
        }
        return 0;
    }
}
