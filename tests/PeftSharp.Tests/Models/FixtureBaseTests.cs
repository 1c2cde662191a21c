using System.Text.Json.Nodes;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;

namespace PeftSharp.Tests.Models;

/// <summary>Every transformers base fixture reproduces its recorded logits (transformers 4.48 eager, fp32).</summary>
public class FixtureBaseTests(ITestOutputHelper output)
{
    public static TheoryData<string> TransformersBases() => new(TransformersBaseNames());

    private static List<string> TransformersBaseNames() =>
        ModelFixtures.Manifest["bases"]!.AsObject()
            .Where(kv => kv.Value!["kind"]!.GetValue<string>() == "transformers")
            .Select(kv => kv.Key)
            .ToList();

    [Theory]
    [MemberData(nameof(TransformersBases))]
    public void Base_reproduces_transformers_logits_within_tolerance(string name)
    {
        var entry = ModelFixtures.Manifest["bases"]![name]!.AsObject();
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(SharedPaths.Fixture(entry["folder"]!.GetValue<string>()));
        Assert.Equal(entry["class"]!.GetValue<string>(), model.Architecture);
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture(entry["input"]!.GetValue<string>()));
        // BERT fixtures pass token_type_ids all 0 explicitly; decoders take none.
        var tokenTypes = model.Config.ModelType == "bert" ? torch.zeros_like(ids) : null;
        using var _ = torch.no_grad();
        var result = model.Forward(ids, mask, tokenTypes);
        var expected = ModelFixtures.Expected(entry["expected"]!["logits"]!.GetValue<string>());
        var tolerance = entry["tolerance"]!.GetValue<double>();
        var diff = ModelFixtures.MaxAbsDiff(result.Logits, expected);
        output.WriteLine($"{name}: max |diff| = {diff:E2}");
        Assert.InRange(diff, 0, tolerance);
    }

    [Fact]
    public void Fixture_list_covers_every_requested_base()
    {
        var names = TransformersBaseNames().ToHashSet();
        Assert.Superset(names, new HashSet<string> { "llama", "llama-tied-rope-scaling", "qwen2", "mistral", "gpt2", "llama-seqcls", "bert-seqcls" });
    }
}
