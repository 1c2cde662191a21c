using PeftSharp.Core;
using PeftSharp.Generation;
using PeftSharp.Models;
using TorchSharp;

namespace PeftSharp.Bench.Commands;

/// <summary>
/// <c>generation</c>: greedy decoding with the KV cache (<see cref="Generator"/>), one row, an 8-token random prompt,
/// a fixed number of new tokens (no stop token); tokens/s = new tokens / wall time, prompt included. Base, LoRA
/// unmerged and LoRA merged, base and LoRA timed in alternation. Causal LMs only.
/// </summary>
internal static class GenerationCommand
{
    private const int PromptLength = 8;

    public static void Run(BenchContext context)
    {
        // Decoding is the slowest call of the run: at most 3 timed calls per side keep the run short.
        var s = context.Settings with { Repeats = Math.Min(context.Settings.Repeats, 3) };
        var rows = new List<string[]>();
        foreach (var key in s.Models)
        {
            var spec = BenchModels.Get(key);
            torch.manual_seed(0);
            using var baseModel = spec.Build();
            if (baseModel.Task != ModelTask.CausalLM)
            {
                continue;
            }
            Console.Error.WriteLine($"[bench]   generation {key}");
            torch.manual_seed(0);
            using var peft = PeftModel.Create(spec.Build(), BenchModels.Lora());
            var loraModel = (PretrainedModel)peft.Model;
            baseModel.eval();
            loraModel.eval();
            using var promptIds = BenchModels.RandomIds(baseModel, 1, PromptLength, seed: 2);
            var prompt = promptIds.data<long>().Select(v => (int)v).ToArray();
            var options = new GenerationOptions { MaxNewTokens = s.GenerationTokens };
            var baseGenerator = new Generator(baseModel);
            var loraGenerator = new Generator(loraModel);
            var produced = 0;

            var (baseUnmerged, unmerged) = InferenceCommand.Alternate(s,
                () => produced = baseGenerator.Generate(prompt, options).Count, () => loraGenerator.Generate(prompt, options));
            peft.Merge();
            var (baseMerged, merged) = InferenceCommand.Alternate(s, () => baseGenerator.Generate(prompt, options), () => loraGenerator.Generate(prompt, options));

            double TokensPerSecond(List<double> ms) => produced / (Stats.Median(ms) / 1e3);
            rows.Add([spec.Label, produced.ToString(), Fmt.F(TokensPerSecond(baseUnmerged)), Fmt.F(TokensPerSecond(unmerged)),
                Fmt.Ratio(TokensPerSecond(unmerged) / TokensPerSecond(baseUnmerged)), Fmt.F(TokensPerSecond(baseMerged)), Fmt.F(TokensPerSecond(merged)),
                Fmt.Ratio(TokensPerSecond(merged) / TokensPerSecond(baseMerged))]);
        }
        context.Report.AddSection("Generation",
            $"Greedy, KV cache, batch 1, {PromptLength}-token prompt, {s.GenerationTokens} new tokens, medians of {s.Repeats} calls after {s.Warmup} warm-up, base and LoRA in alternation; tokens/s include the prompt's forward.\n\n"
            + Markdown.Table(["Model", "new tokens", "base tok/s", "unmerged tok/s", "unmerged / base", "base tok/s (2nd phase)", "merged tok/s", "merged / base"], rows));
    }
}
