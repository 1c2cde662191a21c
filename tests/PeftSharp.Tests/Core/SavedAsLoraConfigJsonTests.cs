using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Merging;
using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.LoraSqueeze;
using PeftSharp.Methods.Sora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Core;

/// <summary>
/// The LoRA configs written for adapters saved as another method's config (a squeezed LoRA-Squeeze, a pruned SoRA, an
/// SVD merge of LoHa adapters), pinned as text: which of the source's shared keys (target_modules … inference_mode) they
/// carry over, and the values they set themselves.
/// </summary>
public class SavedAsLoraConfigJsonTests
{
    private const string SharedKeys = "\"target_modules\": [\"layer\"], \"exclude_modules\": [\"skip\"], \"layers_to_transform\": [0], "
        + "\"layers_pattern\": \"layers\", \"modules_to_save\": [\"head\"], \"base_model_name_or_path\": \"some/model\", "
        + "\"revision\": \"v1\", \"task_type\": \"CAUSAL_LM\", \"inference_mode\": true, \"x_unknown\": 1";

    private static T Parse<T>(string peftType, string body = "") where T : AdapterConfig =>
        Assert.IsType<T>(MethodRegistry.Default.ParseConfig("{\"peft_type\": \"" + peftType + "\", " + SharedKeys + body + "}", "adapter_config.json"));

    private static string Text(AdapterConfig config) => JsonNode.Parse(MethodRegistry.Default.SerializeConfig(config))!.ToJsonString();

    [Fact]
    public void A_squeezed_adapter_is_saved_as_lora_with_every_shared_key()
    {
        var c = Parse<LoraSqueezeConfig>("LORA_SQUEEZE", ", \"r\": 8, \"lora_alpha\": 16, \"lora_dropout\": 0.1, \"use_rslora\": true, \"target_r\": 2");
        Assert.Equal(
            """{"alpha_pattern":{"q":11.31370849898476},"base_model_name_or_path":"some/model","bias":"none","exclude_modules":["skip"],"fan_in_fan_out":false,"inference_mode":true,"init_lora_weights":true,"layers_pattern":"layers","layers_to_transform":[0],"lora_alpha":8,"lora_bias":false,"lora_dropout":0.1,"modules_to_save":["head"],"peft_type":"LORA","r":2,"rank_pattern":{"q":4},"revision":"v1","target_modules":["layer"],"task_type":"CAUSAL_LM","use_dora":false,"use_rslora":true}""",
            Text(c.AsLora(2, new Dictionary<string, int> { ["q"] = 4 })));
    }

    [Fact]
    public void A_pruned_sora_adapter_is_saved_as_lora_in_inference_mode_with_every_shared_key()
    {
        var c = Parse<SoraConfig>("SORA", ", \"r\": 2, \"lora_dropout\": 0.1");
        var state = new Dictionary<string, Tensor>
        {
            ["base_model.model.layer.lora_A.weight"] = torch.ones(2, 3),
            ["base_model.model.layer.lora_B.weight"] = torch.ones(4, 2),
            ["base_model.model.layer.lora_gate"] = torch.tensor(new float[] { 0.5f, 0f }).reshape(1, 2),
        };
        using var pruned = SoraPruning.Prune(c with { InferenceMode = false }, state);
        Assert.Equal(
            """{"alpha_pattern":{},"base_model_name_or_path":"some/model","bias":"none","exclude_modules":["skip"],"fan_in_fan_out":false,"inference_mode":true,"init_lora_weights":true,"layers_pattern":"layers","layers_to_transform":[0],"lora_alpha":1,"lora_bias":false,"lora_dropout":0.1,"modules_to_save":["head"],"peft_type":"LORA","r":1,"rank_pattern":{},"revision":"v1","target_modules":["layer"],"task_type":"CAUSAL_LM","use_dora":false,"use_rslora":false}""",
            Text(pruned.Config));
    }

    [Fact]
    public void An_svd_merge_of_non_lora_adapters_keeps_the_first_sources_shared_keys_but_not_inference_mode()
    {
        var holder = nn.Sequential(("layer", nn.Linear(4, 3, hasBias: false)));
        var config = Parse<LoHaConfig>("LOHA", ", \"r\": 2, \"alpha\": 2, \"init_weights\": false") with
        {
            ExcludeModules = null,
            LayersToTransform = null,
            LayersPattern = null,
            ModulesToSave = null,
        };
        using var peft = PeftModel.Create(holder, config, "p");
        peft.AddAdapter("q", config);
        using var combined = AdapterMerging.Combine(peft, ["p", "q"], [0.6, -0.2], new CombinationOptions { SvdRank = 3 });
        Assert.Equal(
            """{"alpha_pattern":{},"base_model_name_or_path":"some/model","bias":"none","exclude_modules":null,"fan_in_fan_out":false,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":3,"lora_bias":false,"lora_dropout":0,"modules_to_save":null,"peft_type":"LORA","r":3,"rank_pattern":{},"revision":"v1","target_modules":["layer"],"task_type":"CAUSAL_LM","use_dora":false,"use_rslora":false}""",
            Text(combined.Config));
    }
}
