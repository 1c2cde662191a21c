using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.Sora;

namespace PeftSharp.Tests.Methods.Sora;

/// <summary>SoRA's adapter_config.json: keys, defaults and validation errors naming the key.</summary>
public class SoraConfigTests
{
    private static AdapterConfig Parse(string body) =>
        MethodRegistry.Default.ParseConfig("{\"peft_type\": \"SORA\", \"target_modules\": [\"q_proj\"]" + body + "}", "adapter_config.json");

    [Fact]
    public void Defaults_follow_the_official_code_and_keys_round_trip()
    {
        var c = Assert.IsType<SoraConfig>(Parse(""));
        Assert.Equal((8, 16.0, 1e-3, 1e-3, "official", false, 1.0, (string?)null), (c.Rank, c.Alpha, c.SparseLambda, c.SparseLambda2, c.ThresholdForm, c.ThresholdTimesLearningRate, c.SparseLearningRateScale, c.LambdaSchedule));
        var text = MethodRegistry.Default.SerializeConfig(c with { ThresholdForm = "soft", LambdaSchedule = "linear", MaxLambda = 0.01, LambdaNum = 3, LambdaStageSteps = 50 });
        var json = JsonNode.Parse(text)!.AsObject();
        foreach (var key in new[] { "r", "lora_alpha", "lora_dropout", "sparse_lambda", "sparse_lambda_2", "threshold_form", "threshold_times_lr", "sparse_lr_scale", "lambda_schedule", "max_lambda", "lambda_num", "lambda_stage_steps", "init_lora_weights" })
        {
            Assert.True(json.ContainsKey(key), key);
        }
        var again = Assert.IsType<SoraConfig>(MethodRegistry.Default.ParseConfig(text, "again.json"));
        Assert.Equal(("soft", "linear", (double?)0.01, (int?)3, (int?)50), (again.ThresholdForm, again.LambdaSchedule, again.MaxLambda, again.LambdaNum, again.LambdaStageSteps));
    }

    [Theory]
    [InlineData(", \"r\": 0", "r must be > 0")]
    [InlineData(", \"sparse_lambda\": -1", "sparse_lambda must be >= 0")]
    [InlineData(", \"sparse_lambda_2\": -0.1", "sparse_lambda_2 must be >= 0")]
    [InlineData(", \"threshold_form\": \"hard\"", "threshold_form must be")]
    [InlineData(", \"sparse_lr_scale\": 0", "sparse_lr_scale must be > 0")]
    [InlineData(", \"lambda_schedule\": \"cosine\"", "lambda_schedule must be")]
    [InlineData(", \"lambda_schedule\": \"linear\", \"lambda_num\": 3, \"lambda_stage_steps\": 5", "max_lambda must be set")]
    [InlineData(", \"lambda_schedule\": \"linear\", \"max_lambda\": 0.1, \"lambda_stage_steps\": 5", "lambda_num must be set")]
    [InlineData(", \"lambda_schedule\": \"linear\", \"max_lambda\": 0.1, \"lambda_num\": 3", "lambda_stage_steps must be set")]
    [InlineData(", \"lambda_schedule\": \"exp_linear\", \"sparse_lambda_2\": 0, \"max_lambda\": 0.1, \"lambda_num\": 3, \"lambda_stage_steps\": 5", "exp_linear")]
    public void Bad_values_are_rejected_naming_the_key(string body, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(body));
        Assert.Contains(message, e.Message);
    }
}
