using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Tests.Methods.Lora;

/// <summary>
/// adapter_config.json of every method that carries LoRA's <c>r</c> / <c>lora_alpha</c> / <c>lora_dropout</c> keys, pinned
/// as text: the keys written, their order and values, defaults included, and unknown keys kept. Guards refactorings of the
/// shared LoRA-keys config against any change of the saved file.
/// </summary>
public class LoraKeysConfigJsonTests
{
    // The body "set" adds to the minimal config; use_rslora only where the method has it.
    private const string SetBody = ", \"r\": 4, \"lora_alpha\": 6, \"lora_dropout\": 0.25, \"x_unknown\": [1]";

    public static TheoryData<string, bool, string> Goldens => new()
    {
        { "LORA", false, """{"alpha_pattern":{},"base_model_name_or_path":null,"bias":"none","exclude_modules":null,"fan_in_fan_out":false,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":8,"lora_bias":false,"lora_dropout":0,"modules_to_save":null,"peft_type":"LORA","r":8,"rank_pattern":{},"revision":null,"target_modules":["q_proj"],"task_type":null,"use_dora":false,"use_rslora":false}""" },
        { "LORA", true, """{"alpha_pattern":{},"base_model_name_or_path":null,"bias":"none","exclude_modules":null,"fan_in_fan_out":false,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_bias":false,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"LORA","r":4,"rank_pattern":{},"revision":null,"target_modules":["q_proj"],"task_type":null,"use_dora":false,"use_rslora":true,"x_unknown":[1]}""" },
        { "DIFFORA", false, """{"arch_lr_scale":10,"base_model_name_or_path":null,"budget_unit":"modules","exclude_modules":null,"gate_init":0,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":8,"lora_dropout":0,"modules_to_save":null,"peft_type":"DIFFORA","r":8,"revision":null,"search_steps":20,"selection_ratio":0.5,"target_modules":["q_proj"],"task_type":null,"use_rslora":false}""" },
        { "DIFFORA", true, """{"arch_lr_scale":10,"base_model_name_or_path":null,"budget_unit":"modules","exclude_modules":null,"gate_init":0,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"DIFFORA","r":4,"revision":null,"search_steps":20,"selection_ratio":0.5,"target_modules":["q_proj"],"task_type":null,"use_rslora":true,"x_unknown":[1]}""" },
        { "LORA_PRO", false, """{"adam_betas":[0.9,0.999],"adam_eps":1E-08,"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":8,"lora_dropout":0,"modules_to_save":null,"peft_type":"LORA_PRO","pinv_delta":1E-08,"r":8,"revision":null,"target_modules":["q_proj"],"task_type":null,"use_rslora":false}""" },
        { "LORA_PRO", true, """{"adam_betas":[0.9,0.999],"adam_eps":1E-08,"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"LORA_PRO","pinv_delta":1E-08,"r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"use_rslora":true,"x_unknown":[1]}""" },
        { "LORA_SQUEEZE", false, """{"base_model_name_or_path":null,"bias":"none","exclude_modules":null,"fan_in_fan_out":false,"inference_mode":false,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":8,"lora_dropout":0,"modules_to_save":null,"peft_type":"LORA_SQUEEZE","r":8,"revision":null,"squeeze_steps":[100,200],"target_modules":["q_proj"],"target_r":4,"task_type":null,"use_rslora":false}""" },
        { "LORA_SQUEEZE", true, """{"base_model_name_or_path":null,"bias":"none","exclude_modules":null,"fan_in_fan_out":false,"inference_mode":false,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"LORA_SQUEEZE","r":4,"revision":null,"squeeze_steps":[100,200],"target_modules":["q_proj"],"target_r":4,"task_type":null,"use_rslora":true,"x_unknown":[1]}""" },
        { "SORA", false, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"lambda_num":null,"lambda_schedule":null,"lambda_stage_steps":null,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":16,"lora_dropout":0,"max_lambda":null,"modules_to_save":null,"peft_type":"SORA","r":8,"revision":null,"sparse_lambda":0.001,"sparse_lambda_2":0.001,"sparse_lr_scale":1,"target_modules":["q_proj"],"task_type":null,"threshold_form":"official","threshold_times_lr":false}""" },
        { "SORA", true, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"lambda_num":null,"lambda_schedule":null,"lambda_stage_steps":null,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"max_lambda":null,"modules_to_save":null,"peft_type":"SORA","r":4,"revision":null,"sparse_lambda":0.001,"sparse_lambda_2":0.001,"sparse_lr_scale":1,"target_modules":["q_proj"],"task_type":null,"threshold_form":"official","threshold_times_lr":false,"x_unknown":[1]}""" },
        { "DYLORA", false, """{"base_model_name_or_path":null,"exclude_modules":null,"frozen_prefix":true,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":16,"lora_dropout":0,"modules_to_save":null,"peft_type":"DYLORA","r":8,"revision":null,"target_modules":["q_proj"],"task_type":null}""" },
        { "DYLORA", true, """{"base_model_name_or_path":null,"exclude_modules":null,"frozen_prefix":true,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"DYLORA","r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"x_unknown":[1]}""" },
        { "LORA_XS", false, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":8,"lora_dropout":0,"modules_to_save":null,"peft_type":"LORA_XS","r":8,"revision":null,"target_modules":["q_proj"],"task_type":null}""" },
        { "LORA_XS", true, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"LORA_XS","r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"x_unknown":[1]}""" },
        { "MOLE", false, """{"base_model_name_or_path":null,"exclude_modules":null,"expert_modules":".*\\.(gate_proj|up_proj|down_proj|mlp\\.c_fc|mlp\\.c_proj|intermediate\\.dense|\\d\u002B\\.output\\.dense)","inference_mode":false,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":16,"lora_dropout":0.05,"modules_to_save":null,"moe_balance_w":0.01,"num_experts":3,"peft_type":"MOLE","r":8,"revision":null,"routing":"sparse","target_modules":["q_proj"],"task_type":null}""" },
        { "MOLE", true, """{"base_model_name_or_path":null,"exclude_modules":null,"expert_modules":".*\\.(gate_proj|up_proj|down_proj|mlp\\.c_fc|mlp\\.c_proj|intermediate\\.dense|\\d\u002B\\.output\\.dense)","inference_mode":false,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"moe_balance_w":0.01,"num_experts":3,"peft_type":"MOLE","r":4,"revision":null,"routing":"sparse","target_modules":["q_proj"],"task_type":null,"x_unknown":[1]}""" },
        { "LORA_C", false, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":8,"lora_dropout":0,"modules_to_save":null,"peft_type":"LORA_C","r":8,"revision":null,"target_modules":["q_proj"],"task_type":null,"use_dora":false}""" },
        { "LORA_C", true, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"LORA_C","r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"use_dora":false,"x_unknown":[1]}""" },
        { "CONV_LORA", false, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":8,"lora_dropout":0,"modules_to_save":null,"peft_type":"CONV_LORA","r":8,"revision":null,"target_modules":["q_proj"],"task_type":null,"use_dora":false}""" },
        { "CONV_LORA", true, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"CONV_LORA","r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"use_dora":false,"x_unknown":[1]}""" },
        { "CP_LORA", false, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":8,"lora_dropout":0,"modules_to_save":null,"peft_type":"CP_LORA","r":8,"revision":null,"target_modules":["q_proj"],"task_type":null,"use_dora":false}""" },
        { "CP_LORA", true, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"init_lora_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"CP_LORA","r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"use_dora":false,"x_unknown":[1]}""" },
        { "ALLORA", false, """{"base_model_name_or_path":null,"eta":2,"exclude_modules":null,"factor_norm":"squared","factor_update":"every_step","inference_mode":false,"layers_pattern":null,"layers_to_transform":null,"modules_to_save":null,"peft_type":"ALLORA","r":8,"revision":null,"target_modules":["q_proj"],"task_type":null}""" },
        { "ALLORA", true, """{"base_model_name_or_path":null,"eta":2,"exclude_modules":null,"factor_norm":"squared","factor_update":"every_step","inference_mode":false,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"ALLORA","r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"x_unknown":[1]}""" },
        { "LOLDU", false, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":1,"modules_to_save":null,"peft_type":"LOLDU","r":8,"revision":null,"target_modules":["q_proj"],"task_type":null}""" },
        { "LOLDU", true, """{"base_model_name_or_path":null,"exclude_modules":null,"inference_mode":false,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"LOLDU","r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"x_unknown":[1]}""" },
        { "LORA_SB", false, """{"base_model_name_or_path":null,"calibration_lr":null,"calibration_samples":50,"calibration_update":"sign","exclude_modules":null,"inference_mode":false,"init_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_dropout":0,"modules_to_save":null,"peft_type":"LORA_SB","r":8,"revision":null,"target_modules":["q_proj"],"task_type":null}""" },
        { "LORA_SB", true, """{"base_model_name_or_path":null,"calibration_lr":null,"calibration_samples":50,"calibration_update":"sign","exclude_modules":null,"inference_mode":false,"init_weights":true,"layers_pattern":null,"layers_to_transform":null,"lora_alpha":6,"lora_dropout":0.25,"modules_to_save":null,"peft_type":"LORA_SB","r":4,"revision":null,"target_modules":["q_proj"],"task_type":null,"x_unknown":[1]}""" },
    };

    [Theory]
    [MemberData(nameof(Goldens))]
    public void Saved_config_json_is_exactly_the_pinned_text(string peftType, bool set, string expected)
    {
        var rsLora = peftType is "LORA" or "DIFFORA" or "LORA_PRO" or "LORA_SQUEEZE" ? ", \"use_rslora\": true" : "";
        var json = "{\"peft_type\": \"" + peftType + "\", \"target_modules\": [\"q_proj\"]" + (set ? SetBody + rsLora : "") + "}";
        var config = MethodRegistry.Default.ParseConfig(json, "adapter_config.json");
        var text = MethodRegistry.Default.SerializeConfig(config);
        // Indentation is the serializer options' (one setting); the pin is on keys, order and values.
        Assert.Equal(expected, JsonNode.Parse(text)!.ToJsonString());
    }

    [Theory]
    [InlineData("LORA")]
    [InlineData("SORA")]
    [InlineData("CP_LORA")]
    public void An_infinite_lora_alpha_is_rejected_naming_the_key(string peftType)
    {
        var json = "{\"peft_type\": \"" + peftType + "\", \"target_modules\": [\"q_proj\"], \"lora_alpha\": 1e999}";
        var e = Assert.Throws<ConfigException>(() => MethodRegistry.Default.ParseConfig(json, "adapter_config.json"));
        Assert.StartsWith("adapter_config.json: lora_alpha must be finite, got ", e.Message);
    }
}
