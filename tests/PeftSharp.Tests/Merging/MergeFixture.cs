using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Merging;
using PeftSharp.Models;
using PeftSharp.Tests.Methods;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Merging;

/// <summary>The fixture case llama-add-weighted-adapter: two LoRA sources and PEFT 0.20's add_weighted_adapter results.</summary>
internal static class MergeFixture
{
    public const string CaseId = "llama-add-weighted-adapter";

    public static JsonObject Case => ModelFixtures.Manifest["cases"]![CaseId]!.AsObject();

    public static JsonObject Combination(string name) => Case["combinations"]![name]!.AsObject();

    public static string SourceFolder(string key) => SharedPaths.Fixture(Case["adapters"]![key]!.GetValue<string>());

    public static string CombinedFolder(string name) => SharedPaths.Fixture(Combination(name)["adapter"]!.GetValue<string>());

    public static string BaseFolder => SharedPaths.Fixture(ModelFixtures.Manifest["bases"]![Case["base"]!.GetValue<string>()]!["folder"]!.GetValue<string>());

    public static double Tolerance => Case["tolerance"]?.GetValue<double>() ?? 1e-4;

    public static TheoryData<string> Deterministic()
    {
        var data = new TheoryData<string>();
        foreach (var (name, _) in Case["combinations"]!.AsObject())
        {
            if (!name.Contains("dare", StringComparison.Ordinal))
            {
                data.Add(name);
            }
        }
        return data;
    }

    /// <summary>The fixture's base with sources 'a' and 'b' loaded under those names.</summary>
    public static (PretrainedModel Model, PeftModel Peft) LoadWithSources()
    {
        var manifest = ModelFixtures.Manifest;
        var model = PeftFixtureParityTests.LoadBase(manifest["bases"]![Case["base"]!.GetValue<string>()]!.AsObject());
        var peft = PeftModel.Wrap(model);
        PeftAdapterFiles.Load(peft, SourceFolder("a"), "a");
        PeftAdapterFiles.Load(peft, SourceFolder("b"), "b");
        return (model, peft);
    }

    public static double[] Weights(string name) =>
        Combination(name)["kwargs"]!["weights"]!.AsArray().Select(w => w!.GetValue<double>()).ToArray();

    /// <summary>The manifest's exact kwargs as options.</summary>
    public static CombinationOptions Options(string name)
    {
        var kw = Combination(name)["kwargs"]!.AsObject();
        return new CombinationOptions
        {
            Type = CombinationTypes.Parse(kw["combination_type"]!.GetValue<string>()),
            Density = kw["density"]?.GetValue<double>(),
            SvdRank = kw["svd_rank"]?.GetValue<int>(),
            MajoritySign = kw["majority_sign_method"]?.GetValue<string>() == "frequency" ? MajoritySignMethod.Frequency : MajoritySignMethod.Total,
        };
    }

    public static Tensor Logits(PretrainedModel model)
    {
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture(Case["input"]!.GetValue<string>()));
        using var _ = torch.no_grad();
        return model.Forward(ids, mask).Logits;
    }

    public static Tensor Expected(string key) => ModelFixtures.Expected(Case["expected"]![key]!.GetValue<string>());
}
