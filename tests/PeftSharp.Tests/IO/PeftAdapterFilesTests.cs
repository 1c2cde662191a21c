using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.IO;

public class PeftAdapterFilesTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-files-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private static Tensor ToyInput() => Weights.InputIds();

    [Theory]
    [InlineData("toy-conv-lora")]
    public void Peft_toy_conv_adapter_reproduces_peft_logits(string caseId)
    {
        var net = ToyConvNet.FromFixture();
        var ids = ToyInput();
        using var baseLogits = net.call(ids);
        Assert.True(Weights.MaxAbsDiff(baseLogits, Weights.Fixture("bases/toy-conv/expected.safetensors:logits")) <= 1e-4);
        var peft = PeftAdapterFiles.FromPretrained(net, SharedPaths.Fixture("cases", caseId, "adapter"));
        var expected = $"cases/{caseId}/expected.safetensors:";
        using var adapted = net.call(ids);
        Assert.True(Weights.MaxAbsDiff(adapted, Weights.Fixture(expected + "logits_adapter")) <= 1e-4);
        using (peft.DisableAdapters())
        {
            using var disabled = net.call(ids);
            Assert.True(Weights.MaxAbsDiff(disabled, Weights.Fixture(expected + "logits_disabled")) <= 1e-4);
        }
        var merged = (nn.Module<Tensor, Tensor>)peft.MergeAndUnload();
        using var mergedLogits = merged.call(ids);
        Assert.True(Weights.MaxAbsDiff(mergedLogits, Weights.Fixture(expected + "logits_merged")) <= 1e-4);
    }

    [Fact]
    public void Loaded_peft_adapter_saves_back_to_the_identical_safetensors_bytes()
    {
        var source = SharedPaths.Fixture("cases", "toy-conv-lora", "adapter");
        var peft = PeftAdapterFiles.FromPretrained(ToyConvNet.FromFixture(), source);
        PeftAdapterFiles.Save(peft, _tmp);
        Assert.Equal(File.ReadAllBytes(Path.Combine(source, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(_tmp, "adapter_model.safetensors")));
    }

    [Fact]
    public void Save_load_save_is_byte_identical_and_load_is_bit_exact()
    {
        torch.manual_seed(31);
        var net = new NestedNet();
        var config = new LoraConfig { Rank = 3, Alpha = 6, UseRsLora = true, TargetModules = TargetModules.Of("q_proj", "left"), ModulesToSave = ["lm_head"], BaseModelNameOrPath = "nested" };
        var peft = PeftModel.Create(net, config);
        using (torch.no_grad())
        {
            foreach (var p in peft.AdapterStateDict("default").Values)
            {
                p.copy_(torch.randn_like(p));
            }
        }
        var x = torch.randn(2, 4);
        using var before = net.call(x);
        var first = Path.Combine(_tmp, "a");
        PeftAdapterFiles.Save(peft, first);

        torch.manual_seed(99);
        var fresh = new NestedNet();
        using (torch.no_grad())
        {
            foreach (var ((_, dst), (_, src)) in fresh.named_parameters().Zip(new NestedNet().named_parameters()))
            {
                dst.copy_(src);
            }
        }
        var baseState = net.named_parameters().Where(p => p.name.Contains("base_layer") || p.name.Contains("original_module") || !p.name.Contains("lora") && !p.name.Contains("modules_to_save"))
            .Select(p => p.parameter).ToList();
        var reloadedNet = new NestedNet();
        CopyBase(peft, reloadedNet);
        var reloaded = PeftAdapterFiles.FromPretrained(reloadedNet, first);
        using var after = reloadedNet.call(x);
        Assert.True(Weights.Exact(after, before), "reloaded adapter must reproduce the output bit for bit");
        var second = Path.Combine(_tmp, "b");
        PeftAdapterFiles.Save(reloaded, second);
        foreach (var f in new[] { "adapter_config.json", "adapter_model.safetensors" })
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(first, f)), File.ReadAllBytes(Path.Combine(second, f)));
        }
        var json = File.ReadAllText(Path.Combine(first, "adapter_config.json"));
        Assert.Contains("\"peft_type\": \"LORA\"", json);
        Assert.Contains("\"use_rslora\": true", json);
        Assert.NotEmpty(baseState);
    }

    // Copies the base weights of an adapted NestedNet into a plain one, so the reload starts from the same base.
    private static void CopyBase(PeftModel adapted, NestedNet target)
    {
        var source = adapted.Model.named_parameters()
            .Where(p => !p.name.Contains("lora_") && !p.name.Contains("modules_to_save"))
            .ToDictionary(p => p.name.Replace(".base_layer", "").Replace(".original_module", ""), p => p.parameter);
        using var _ = torch.no_grad();
        foreach (var (name, p) in target.named_parameters())
        {
            p.copy_(source[name]);
        }
    }

    [Fact]
    public void Several_adapters_save_into_subfolders_and_load_by_name()
    {
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoraConfig { TargetModules = TargetModules.Of("q_proj") });
        peft.AddAdapter("other", new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("v_proj") });
        PeftAdapterFiles.Save(peft, _tmp);
        Assert.True(File.Exists(Path.Combine(_tmp, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(_tmp, "other", "adapter_config.json")));
        var target = PeftModel.Wrap(new NestedNet());
        PeftAdapterFiles.Load(target, Path.Combine(_tmp, "other"), "other");
        Assert.Equal(["other"], target.Configs.Keys);
        Assert.Equal(2, ((LoraLayer)ModuleTree.Get(target.Model, "blocks.0.v_proj")).RankOf("other"));
    }

    public static TheoryData<string, string, string> BadAdapters => new()
    {
        { "malformed json", "adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": 8," },
        { "wrong type", "adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": \"eight\", \"target_modules\": [\"q_proj\"]}" },
        { "unknown peft_type", "adapter_config.json", "{\"peft_type\": \"NOPE\", \"target_modules\": [\"q_proj\"]}" },
        { "negative alpha", "adapter_config.json", "{\"peft_type\": \"LORA\", \"lora_alpha\": -1, \"target_modules\": [\"q_proj\"]}" },
        { "rank does not fit the file", "adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": 5, \"target_modules\": [\"q_proj\"]}" },
        { "no matching module", "adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": [\"nothing\"]}" },
        { "truncated weights", "adapter_model.safetensors", "TRUNCATE" },
        { "missing weights", "adapter_model.safetensors", "DELETE" },
    };

    [Theory]
    [MemberData(nameof(BadAdapters))]
    public void Bad_adapter_gives_a_library_error_and_leaves_the_model_unchanged(string what, string file, string content)
    {
        var good = Path.Combine(_tmp, "good");
        PeftAdapterFiles.Save(PeftModel.Create(new NestedNet(), new LoraConfig { Rank = 4, TargetModules = TargetModules.Of("q_proj") }), good);
        var path = Path.Combine(good, file);
        switch (content)
        {
            case "TRUNCATE":
                var bytes = File.ReadAllBytes(path);
                File.WriteAllBytes(path, bytes[..(bytes.Length - 7)]);
                break;
            case "DELETE":
                File.Delete(path);
                break;
            default:
                File.WriteAllText(path, content);
                break;
        }
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoraConfig { Rank = 2, TargetModules = TargetModules.Of("v_proj") });
        var x = torch.randn(2, 4);
        using var before = net.call(x);
        var names = net.named_parameters().Select(p => p.name).ToList();
        var e = Assert.ThrowsAny<PeftException>(() => PeftAdapterFiles.Load(peft, good, "second"));
        Assert.False(string.IsNullOrWhiteSpace(e.Message), what);
        Assert.Equal(names, net.named_parameters().Select(p => p.name));
        Assert.Equal(["default"], peft.Configs.Keys);
        using var after = net.call(x);
        Assert.True(Weights.Exact(after, before));
    }
}

public class PeftConfigRoundTripTests
{
    [Fact]
    public void Keys_peftsharp_does_not_model_are_written_back_unchanged()
    {
        var source = SharedPaths.Fixture("cases", "bert-seqcls-lora-all-linear-rslora", "adapter", "adapter_config.json");
        var original = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(source))!.AsObject();
        var config = MethodRegistry.Default.ParseConfig(File.ReadAllText(source), source);
        var written = System.Text.Json.Nodes.JsonNode.Parse(MethodRegistry.Default.SerializeConfig(config))!.AsObject();
        foreach (var key in new[] { "megatron_core", "qalora_group_size", "peft_version", "loftq_config", "ensure_weight_tying", "alora_invocation_tokens" })
        {
            Assert.True(written.ContainsKey(key), key);
            Assert.Equal(original[key]?.ToJsonString(), written[key]?.ToJsonString());
        }
        Assert.Equal(original.Select(p => p.Key).Order(), written.Select(p => p.Key).Order());
        Assert.Equal(original["target_modules"]!.ToJsonString(), written["target_modules"]!.ToJsonString());
    }
}

public class LoraBiasModeTests
{
    [Theory]
    [InlineData("none", 0)]
    [InlineData("lora_only", 2 * 6)]
    [InlineData("all", 6 + 6 + 6 + 6 + 6 + 3)]
    public void Bias_mode_decides_which_biases_train_and_they_are_saved(string bias, int biasElements)
    {
        var net = new NestedNet();
        var peft = PeftModel.Create(net, new LoraConfig { Rank = 2, Bias = bias, TargetModules = TargetModules.Of("q_proj") });
        var loraElements = 2 * 2 * (6 + 6);
        Assert.Equal(loraElements + biasElements, peft.ParameterCounts().Trainable);
        var saved = peft.AdapterStateDict("default");
        Assert.Equal(loraElements + biasElements, saved.Values.Sum(t => t.numel()));
        if (bias == "lora_only")
        {
            Assert.Contains("base_model.model.blocks.0.q_proj.base_layer.bias", saved.Keys);
        }
    }
}
