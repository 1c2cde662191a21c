using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Methods.Bone;
using PeftSharp.Methods.Miss;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Methods.Bone;

/// <summary>
/// Bone and MiSS are registered as two methods, so a PEFT file of either type is written back as that type: a Bone
/// adapter (PEFT 0.18.1) and a MiSS one (0.20.0) loaded from the fixtures and saved again have the fixture's keys,
/// shapes, values and variant.
/// </summary>
public class BoneFileTests
{
    [Theory]
    [InlineData("llama-bone-qv", "BONE", "bone_block")]
    [InlineData("llama-bone-bat-qv", "BONE", "bone_block")]
    [InlineData("llama-miss-bat-qv", "MISS", "miss_block")]
    public void A_loaded_PEFT_adapter_saves_back_under_its_own_type_keys_and_values(string caseId, string peftType, string key)
    {
        var manifest = ModelFixtures.Manifest;
        var baseEntry = manifest["bases"]![manifest["cases"]![caseId]!["base"]!.GetValue<string>()]!.AsObject();
        var source = SharedPaths.Fixture("cases", caseId, "adapter");
        using var model = PeftFixtureParityTests.LoadBase(baseEntry);
        var peft = PeftAdapterFiles.FromPretrained(model, source);
        var dir = Directory.CreateTempSubdirectory("peftsharp-bone-").FullName;
        try
        {
            PeftAdapterFiles.Save(peft, dir);
            var original = JsonNode.Parse(File.ReadAllText(Path.Combine(source, PeftAdapterFiles.ConfigFileName)))!;
            var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, PeftAdapterFiles.ConfigFileName)))!;
            Assert.Equal(peftType, saved["peft_type"]!.GetValue<string>());
            Assert.Equal(original["init_weights"]!.ToJsonString(), saved["init_weights"]!.ToJsonString());
            Assert.Equal(peftType == MissConfig.Type, saved.AsObject().ContainsKey("mini_r"));

            using var expected = SafetensorsFile.Open(Path.Combine(source, PeftAdapterFiles.WeightsFileName));
            using var got = SafetensorsFile.Open(Path.Combine(dir, PeftAdapterFiles.WeightsFileName));
            Assert.Equal(expected.Entries.Select(e => (e.Name, string.Join("x", e.Shape))).OrderBy(e => e.Name),
                got.Entries.Select(e => (e.Name, string.Join("x", e.Shape))).OrderBy(e => e.Name));
            Assert.All(got.Entries, e => Assert.EndsWith("." + key, e.Name));
            foreach (var e in expected.Entries)
            {
                Assert.Equal(expected.ReadRaw(e.Name), got.ReadRaw(e.Name));
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Bone_and_MiSS_are_separate_registered_methods()
    {
        var registry = MethodRegistry.Default;
        Assert.IsType<BoneMethod>(registry.Get("BONE"));
        Assert.IsType<MissMethod>(registry.Get("MISS"));
        Assert.IsType<BoneLayer>(registry.Get("bone").CreateLayer(BaseLayer.TryCreate(TorchSharp.torch.nn.Linear(2, 2))!));
    }
}
