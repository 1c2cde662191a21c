using System.CommandLine;
using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Generation;
using PeftSharp.Models;
using PeftSharp.Tokenization;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft generate --model DIR [--adapter [NAME=]DIR] [--prompt TEXT [--prompt-adapter NAME]]… | --chat …</c>: text
/// generation with a KV cache, streamed to the terminal; <c>--json</c> prints one object with the prompt ids, generated ids
/// and text. Several prompts run as one batch (a JSON array); with --prompt-adapter each row uses its own adapter.
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
            model, adapters, merge, prompt, promptAdapter, chat, maxNew, temperature, topK, topP, minP, repetition, seed, stops, truncate, json, device,
        };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var dir = parse.GetValue(model)!.FullName;
            var tokenizer = HfTokenizer.FromFolder(dir);
            var (adapterDirs, adapterNames) = ParseAdapters(parse.GetValue(adapters) ?? []);
            var rowAdapters = parse.GetValue(promptAdapter) ?? [];
            if (rowAdapters.Length > 0 && parse.GetValue(merge))
            {
                throw new PeftException("--prompt-adapter runs each prompt with its own adapter; it cannot be combined with --merge");
            }
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
            if (prompts.Length > 1 || rowAdapters.Length > 0)
            {
                return GenerateBatch(generation, peft, prompts, rowAdapters, options, stopStrings, parse.GetValue(json));
            }
            var text = prompts[0];
            if (parse.GetValue(json))
            {
                var result = generation.Generate(text, options, stopStrings);
                var o = new JsonObject
                {
                    ["prompt"] = text,
                    ["prompt_ids"] = new JsonArray(result.PromptIds.Select(i => (JsonNode)JsonValue.Create(i)).ToArray()),
                    ["generated_ids"] = new JsonArray(result.GeneratedIds.Select(i => (JsonNode)JsonValue.Create(i)).ToArray()),
                    ["text"] = result.Text,
                    ["stop_reason"] = result.StopReason,
                };
                Console.WriteLine(o.ToJsonString(CliJson.Options));
                return 0;
            }
            Console.Write(text);
            generation.Generate(text, options, stopStrings, piece => Console.Write(piece));
            Console.WriteLine();
            return 0;
        }));
        return cmd;
    }

    /// <summary><c>NAME=DIR</c> or <c>DIR</c> per --adapter value; an existing folder whose path contains '=' stays a folder.</summary>
    private static (DirectoryInfo[] Dirs, string?[] Names) ParseAdapters(string[] values)
    {
        var dirs = new DirectoryInfo[values.Length];
        var names = new string?[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            var v = values[i];
            var eq = v.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && !Directory.Exists(v))
            {
                names[i] = v[..eq];
                dirs[i] = new DirectoryInfo(v[(eq + 1)..]);
            }
            else
            {
                dirs[i] = new DirectoryInfo(v);
            }
        }
        var duplicate = names.Where(n => n is not null).GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new PeftException($"--adapter: the name '{duplicate.Key}' is given twice");
        }
        return (dirs, names);
    }

    /// <summary>Several prompts in one left-padded batch; with --prompt-adapter each row runs its own adapter (PEFT's adapter_names).</summary>
    private static int GenerateBatch(TextGeneration generation, PeftModel? peft, string[] prompts, string[] rowAdapters, GenerationOptions options, string[] stops, bool json)
    {
        IReadOnlyList<GeneratedText> results;
        if (rowAdapters.Length > 0)
        {
            if (rowAdapters.Length != prompts.Length)
            {
                throw new PeftException($"--prompt-adapter is given {rowAdapters.Length} time(s) for {prompts.Length} --prompt(s); give one per prompt, in order");
            }
            if (peft is null)
            {
                throw new PeftException("--prompt-adapter needs adapters: load them with --adapter NAME=DIR");
            }
            using var routing = peft.UseAdapterPerRow(rowAdapters);
            results = generation.Generate(prompts, options, stops);
        }
        else
        {
            results = generation.Generate(prompts, options, stops);
        }
        if (json)
        {
            var array = new JsonArray();
            for (var i = 0; i < prompts.Length; i++)
            {
                var r = results[i];
                array.Add(new JsonObject
                {
                    ["prompt"] = prompts[i],
                    ["adapter"] = rowAdapters.Length > 0 ? rowAdapters[i] : null,
                    ["prompt_ids"] = new JsonArray(r.PromptIds.Select(id => (JsonNode)JsonValue.Create(id)).ToArray()),
                    ["generated_ids"] = new JsonArray(r.GeneratedIds.Select(id => (JsonNode)JsonValue.Create(id)).ToArray()),
                    ["text"] = r.Text,
                    ["stop_reason"] = r.StopReason,
                });
            }
            Console.WriteLine(array.ToJsonString(CliJson.Options));
            return 0;
        }
        for (var i = 0; i < prompts.Length; i++)
        {
            Console.WriteLine(rowAdapters.Length > 0 ? $"[{rowAdapters[i]}] {prompts[i]}{results[i].Text}" : prompts[i] + results[i].Text);
        }
        return 0;
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
