using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Generation;
using PeftSharp.IO;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// One pass of <c>peft generate</c> over its prompts: a single prompt streamed, or several prompts as one left-padded
/// batch (with --prompt-adapter each row runs its own adapter, PEFT's <c>adapter_names</c>); printed as text or as JSON.
/// </summary>
internal sealed class GeneratePass(TextGeneration generation, PeftModel? peft, string[] prompts, string[] rowAdapters, GenerationOptions options, string[] stops)
{
    private bool IsBatch => prompts.Length > 1 || rowAdapters.Length > 0;

    /// <summary>Checks --prompt-adapter against the prompts before anything is generated.</summary>
    public void Validate()
    {
        if (rowAdapters.Length == 0)
        {
            return;
        }
        if (rowAdapters.Length != prompts.Length)
        {
            throw new PeftException($"--prompt-adapter is given {rowAdapters.Length} time(s) for {prompts.Length} --prompt(s); give one per prompt, in order");
        }
        if (peft is null)
        {
            throw new PeftException("--prompt-adapter needs adapters: load them with --adapter NAME=DIR");
        }
    }

    /// <summary>Prints the prompts with their continuations: a single prompt streams, a batch prints one line per prompt.</summary>
    public void Print()
    {
        if (!IsBatch)
        {
            Console.Write(prompts[0]);
            generation.Generate(prompts[0], options, stops, piece => Console.Write(piece));
            Console.WriteLine();
            return;
        }
        var results = GenerateBatch();
        for (var i = 0; i < prompts.Length; i++)
        {
            Console.WriteLine(rowAdapters.Length > 0 ? $"[{rowAdapters[i]}] {prompts[i]}{results[i].Text}" : prompts[i] + results[i].Text);
        }
    }

    /// <summary>What --json prints: one object for a single prompt, an array of objects (in prompt order) for a batch.</summary>
    public JsonNode Json()
    {
        if (!IsBatch)
        {
            return Row(prompts[0], generation.Generate(prompts[0], options, stops), inBatch: false, adapter: null);
        }
        var results = GenerateBatch();
        var array = new JsonArray();
        for (var i = 0; i < prompts.Length; i++)
        {
            array.Add(Row(prompts[i], results[i], inBatch: true, adapter: rowAdapters.Length > 0 ? rowAdapters[i] : null));
        }
        return array;
    }

    /// <summary>
    /// Generates once with the loaded adapters, then once more after each hot-swap: <paramref name="swaps"/> replace the
    /// weights of their target adapter in place (<see cref="PeftAdapterFiles.HotSwap"/>). Every block is labelled with
    /// the folder whose weights it ran; <paramref name="first"/> labels the loaded adapter. A swap that does not fit stops
    /// the run with the error, after the blocks before it.
    /// </summary>
    public void RunHotSwaps(PeftModel model, (string Target, string Dir) first, IReadOnlyList<(string Target, string Dir)> swaps, bool json)
    {
        var blocks = new JsonArray();
        foreach (var (i, (target, dir)) in Enumerable.Prepend(swaps, first).Index())
        {
            if (i > 0)
            {
                PeftAdapterFiles.HotSwap(model, dir, target);
            }
            if (json)
            {
                blocks.Add(new JsonObject { ["adapter_path"] = dir, ["adapter"] = target, ["output"] = Json() });
                continue;
            }
            Console.WriteLine($"# adapter {target}: {dir}");
            Print();
        }
        if (json)
        {
            Console.WriteLine(blocks.ToJsonString(CliJson.Options));
        }
    }

    private IReadOnlyList<GeneratedText> GenerateBatch()
    {
        if (rowAdapters.Length == 0)
        {
            return generation.Generate(prompts, options, stops);
        }
        using var routing = peft!.UseAdapterPerRow(rowAdapters);
        return generation.Generate(prompts, options, stops);
    }

    // A batch row carries "adapter" (null without --prompt-adapter); a single prompt's object has no such key.
    private static JsonObject Row(string prompt, GeneratedText r, bool inBatch, string? adapter)
    {
        var o = new JsonObject { ["prompt"] = prompt };
        if (inBatch)
        {
            o["adapter"] = adapter;
        }
        o["prompt_ids"] = new JsonArray(r.PromptIds.Select(id => (JsonNode)JsonValue.Create(id)).ToArray());
        o["generated_ids"] = new JsonArray(r.GeneratedIds.Select(id => (JsonNode)JsonValue.Create(id)).ToArray());
        o["text"] = r.Text;
        o["stop_reason"] = r.StopReason;
        return o;
    }
}
