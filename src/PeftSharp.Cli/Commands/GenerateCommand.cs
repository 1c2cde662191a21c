using System.CommandLine;
using System.Text.Json.Nodes;
using PeftSharp.Generation;
using PeftSharp.Models;
using PeftSharp.Tokenization;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft generate --model DIR [--adapter DIR] [--prompt TEXT | --chat] …</c>: text generation with a KV cache,
/// streamed to the terminal; <c>--json</c> prints one object with the prompt ids, generated ids and text.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face model folder (causal LM) with tokenizer.json.", Required = true };
        var adapters = new Option<DirectoryInfo[]>("--adapter") { Description = "PEFT adapter folder(s) to apply." };
        var merge = new Option<bool>("--merge") { Description = "Merge the adapters into the weights first (same greedy output, faster)." };
        var prompt = new Option<string?>("--prompt") { Description = "The prompt text (BOS is added as the tokenizer says)." };
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
            model, adapters, merge, prompt, chat, maxNew, temperature, topK, topP, minP, repetition, seed, stops, truncate, json, device,
        };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var dir = parse.GetValue(model)!.FullName;
            var tokenizer = HfTokenizer.FromFolder(dir);
            var (net, _) = ModelLoading.Load(dir, parse.GetValue(adapters) ?? [], parse.GetValue(merge), CommonOptions.ParseDevice(parse.GetValue(device)));
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
            var text = parse.GetValue(prompt) ?? throw new PeftException("give --prompt TEXT or --chat");
            text = FitToContext(text, tokenizer, net, options.MaxNewTokens, parse.GetValue(truncate));
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
