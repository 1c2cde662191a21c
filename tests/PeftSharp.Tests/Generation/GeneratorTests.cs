using System.Text.Json.Nodes;
using PeftSharp.Generation;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using Generator = PeftSharp.Generation.Generator;

namespace PeftSharp.Tests.Generation;

/// <summary>Greedy decoding reproduces llama2.c's run.c on stories260K; sampling is seeded and filtered as configured.</summary>
public class GeneratorTests
{
    private static string Stories => SharedPaths.Asset("models", "stories260K");

    private static List<(int[] Prompt, int[] Generated, int Steps)> ReferenceCases()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Stories, "reference_generation.json")))!;
        return json["cases"]!.AsArray().Select(c => (
            c!["prompt_ids"]!.AsArray().Select(v => v!.GetValue<int>()).ToArray(),
            c["generated_ids"]!.AsArray().Select(v => v!.GetValue<int>()).ToArray(),
            c["steps"]!.GetValue<int>())).ToList();
    }

    // run.c fills `steps` positions, the prompt included, and stops at BOS (id 1); generation_config.json: eos [1, 2].
    private static GenerationOptions Greedy(int promptLength, int steps) =>
        new() { MaxNewTokens = steps - promptLength + 1, EosTokenIds = [1, 2] };

    [Fact]
    public void Greedy_generation_reproduces_llama2c_reference_ids()
    {
        using var model = AutoModel.FromPretrained(Stories);
        var generator = new Generator(model);
        foreach (var (prompt, expected, steps) in ReferenceCases())
        {
            Assert.Equal(expected, generator.Generate(prompt, Greedy(prompt.Length, steps)));
        }
    }

    [Fact]
    public void Batched_left_padded_greedy_generation_equals_each_prompt_alone()
    {
        using var model = AutoModel.FromPretrained(Stories);
        var generator = new Generator(model);
        var cases = ReferenceCases();
        // One budget for the batch: each row's reference ids, cut to what that budget allows.
        var options = new GenerationOptions { MaxNewTokens = 40, EosTokenIds = [1, 2] };
        var batched = generator.Generate(cases.Select(c => (IReadOnlyList<int>)c.Prompt).ToList(), options);
        for (var i = 0; i < cases.Count; i++)
        {
            Assert.Equal(cases[i].Generated.Take(40), batched[i]);
        }
    }

    [Fact]
    public void Sampling_with_the_same_seed_repeats_and_top_k_1_equals_greedy()
    {
        using var model = AutoModel.FromPretrained(Stories);
        var generator = new Generator(model);
        int[] prompt = [1, 403, 407, 261, 378];
        var sampled = new GenerationOptions { MaxNewTokens = 30, DoSample = true, Temperature = 1.5, TopP = 0.95, MinP = 0.01, Seed = 7 };
        var a = generator.Generate(prompt, sampled);
        var b = generator.Generate(prompt, sampled);
        var c = generator.Generate(prompt, sampled with { Seed = 8 });
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        var greedy = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 30 });
        Assert.Equal(greedy, generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 30, DoSample = true, TopK = 1, Temperature = 3, Seed = 1 }));
    }

    [Fact]
    public void Generation_stops_at_an_eos_id_and_includes_it()
    {
        using var model = AutoModel.FromPretrained(Stories);
        var generator = new Generator(model);
        var (prompt, expected, _) = ReferenceCases()[1];
        // Declare the 3rd greedy token a stop id: output ends right there, stop token included.
        var output = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 40, EosTokenIds = [expected[2]] });
        Assert.Equal(expected.Take(3), output);
    }

    [Fact]
    public void Repetition_penalty_scales_seen_scores_as_transformers()
    {
        using var scope = torch.NewDisposeScope();
        var scores = torch.tensor(new float[] { 2, -2, 1, 0.5f }).unsqueeze(0);
        var seen = torch.tensor(new[] { true, true, false, false }).unsqueeze(0);
        var result = LogitsProcessing.RepetitionPenalty(scores, seen, 2).data<float>().ToArray();
        Assert.Equal(new float[] { 1, -4, 1, 0.5f }, result);
    }

    [Fact]
    public void Top_k_top_p_and_min_p_keep_the_hand_computed_sets()
    {
        using var scope = torch.NewDisposeScope();
        // probabilities 0.5, 0.25, 0.125, 0.125 (log-scores).
        var scores = torch.tensor(new[] { 0.5, 0.25, 0.125, 0.125 }).log().to_type(ScalarType.Float32).unsqueeze(0);
        static bool[] Kept(Tensor t) => t.isfinite().data<bool>().ToArray();
        Assert.Equal(new[] { true, true, false, false }, Kept(LogitsProcessing.TopK(scores, 2)));
        // top_p 0.7: ascending cumulative 0.125, 0.25, 0.5, 1.0; remove where <= 0.3 -> the two 0.125 tokens.
        Assert.Equal(new[] { true, true, false, false }, Kept(LogitsProcessing.TopP(scores, 0.7)));
        // top_p 0.5: remove cumulative <= 0.5 -> only the 0.5 token survives.
        Assert.Equal(new[] { true, false, false, false }, Kept(LogitsProcessing.TopP(scores, 0.5)));
        // min_p 0.3: threshold 0.15 -> drop both 0.125 tokens; min_p 0.6: threshold 0.3 -> keep the top one only.
        Assert.Equal(new[] { true, true, false, false }, Kept(LogitsProcessing.MinP(scores, 0.3)));
        Assert.Equal(new[] { true, false, false, false }, Kept(LogitsProcessing.MinP(scores, 0.6)));
    }

    [Fact]
    public void Invalid_settings_and_non_causal_models_are_refused()
    {
        Assert.Throws<PeftException>(() => new GenerationOptions { TopP = 0 }.Validate());
        Assert.Throws<PeftException>(() => new GenerationOptions { Temperature = 0 }.Validate());
        using var bert = AutoModel.FromPretrained(SharedPaths.Fixture("bases", "bert-seqcls"));
        var e = Assert.Throws<PeftException>(() => new Generator(bert));
        Assert.Contains("BertForSequenceClassification", e.Message);
    }
}
