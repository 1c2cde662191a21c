using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods;

/// <summary>
/// Every adapter Hugging Face PEFT wrote in ../shared/fixtures whose method is registered here, on the model it was made
/// for: logits with the adapter, inside disable_adapter() and after merge_and_unload() match PEFT's within the manifest's
/// tolerance. A newly registered method joins this table by itself.
/// </summary>
public class PeftFixtureParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        var manifest = ModelFixtures.Manifest;
        foreach (var (id, node) in manifest["cases"]!.AsObject())
        {
            var c = node!.AsObject();
            if (c["adapter"] is null || c["expected"]?["logits_adapter"] is null)
            {
                continue;
            }
            var config = JsonNode.Parse(File.ReadAllText(SharedPaths.Fixture(c["adapter"]!.GetValue<string>(), "adapter_config.json")))!;
            var peftType = config["peft_type"]!.GetValue<string>();
            if (MethodRegistry.Default.Find(peftType) is not null && (config["use_dora"]?.GetValue<bool>() != true || DoraSupported))
            {
                data.Add(id);
            }
        }
        return data;
    }

    private static bool DoraSupported => Type.GetType("PeftSharp.Methods.Dora.DoraVariant, PeftSharp") is not null;

    [Theory]
    [MemberData(nameof(Cases))]
    public void Peft_adapter_reproduces_adapter_disabled_and_merged_logits(string caseId)
    {
        var manifest = ModelFixtures.Manifest;
        var c = manifest["cases"]![caseId]!.AsObject();
        var baseEntry = manifest["bases"]![c["base"]!.GetValue<string>()]!.AsObject();
        var tolerance = c["tolerance"]?.GetValue<double>() ?? 1e-4;
        var (ids, mask, types) = ModelFixtures.Inputs(SharedPaths.Fixture(c["input"]?.GetValue<string>() ?? baseEntry["input"]!.GetValue<string>()));
        var expected = c["expected"]!.AsObject();
        if (baseEntry["kind"]!.GetValue<string>() == "torch-module")
        {
            CheckToyConv(c, ids, tolerance);
            return;
        }
        using var model = LoadBase(baseEntry);
        var peft = PeftAdapterFiles.FromPretrained(model, SharedPaths.Fixture(c["adapter"]!.GetValue<string>()));

        Check("adapter", Logits(model, ids, mask, types), expected["logits_adapter"]!, tolerance);
        if (expected["logits_disabled"] is { } disabledRef)
        {
            using (peft.DisableAdapters())
            {
                Check("disabled", Logits(model, ids, mask, types), disabledRef, tolerance);
            }
        }
        if (expected["logits_merged"] is { } mergedRef)
        {
            var merged = (PretrainedModel)peft.MergeAndUnload();
            Assert.DoesNotContain(merged.named_modules(), m => m.module is AdapterLayer or ModulesToSaveWrapper);
            Check("merged", Logits(merged, ids, mask, types), mergedRef, tolerance);
        }
    }

    // The fixture's plain torch module (ToyConvNet): same three checks through its own forward.
    private void CheckToyConv(JsonObject c, Tensor ids, double tolerance)
    {
        var net = ToyConvNet.FromFixture();
        var peft = PeftAdapterFiles.FromPretrained(net, SharedPaths.Fixture(c["adapter"]!.GetValue<string>()));
        var expected = c["expected"]!.AsObject();
        using (torch.no_grad())
        {
            Check("adapter", net.call(ids), expected["logits_adapter"]!, tolerance);
            using (peft.DisableAdapters())
            {
                Check("disabled", net.call(ids), expected["logits_disabled"]!, tolerance);
            }
            var merged = (nn.Module<Tensor, Tensor>)peft.MergeAndUnload();
            Check("merged", merged.call(ids), expected["logits_merged"]!, tolerance);
        }
    }

    private void Check(string what, Tensor logits, JsonNode reference, double tolerance)
    {
        var diff = ModelFixtures.MaxAbsDiff(logits, ModelFixtures.Expected(reference.GetValue<string>()));
        output.WriteLine($"{what}: max |Δ| = {diff:E2}");
        Assert.InRange(diff, 0, tolerance);
    }

    private static Tensor Logits(PretrainedModel model, Tensor ids, Tensor mask, Tensor? types)
    {
        using var _ = torch.no_grad();
        return model.Forward(ids, mask, types).Logits;
    }

    /// <summary>A fixture base: a transformers folder, or the real MiniLM with the fixture's seeded head.</summary>
    internal static PretrainedModel LoadBase(JsonObject baseEntry)
    {
        var folder = SharedPaths.Fixture(baseEntry["folder"]!.GetValue<string>());
        if (baseEntry["head"] is not { } head)
        {
            return AutoModel.FromPretrained(folder);
        }
        var model = AutoModel.FromPretrained(folder, new ModelLoadOptions { Architecture = "BertForSequenceClassification", NumLabels = 2, AllowNewHead = true });
        using var _ = torch.no_grad();
        using var file = SafetensorsFile.Open(SharedPaths.Fixture(head.GetValue<string>()));
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var t in file.Entries)
        {
            using var value = file.Read(t.Name);
            parameters[t.Name].copy_(value);
        }
        return model;
    }
}
