using PeftSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>Every supported architecture builds from a config and gives logits of its task's shape.</summary>
public class AutoModelTests
{
    private static ModelConfig ConfigFor(string architecture)
    {
        var modelType = architecture switch
        {
            var a when a.StartsWith("Llama", StringComparison.Ordinal) => "llama",
            var a when a.StartsWith("Qwen2", StringComparison.Ordinal) => "qwen2",
            var a when a.StartsWith("Mistral", StringComparison.Ordinal) => "mistral",
            var a when a.StartsWith("GPT2", StringComparison.Ordinal) => "gpt2",
            _ => "bert",
        };
        var sizes = modelType == "gpt2"
            ? """ "n_embd": 16, "n_layer": 2, "n_head": 2, "n_positions": 32 """
            : """ "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32, "type_vocab_size": 2, "num_key_value_heads": 1 """;
        return ModelConfig.Parse($$"""
            { "model_type": "{{modelType}}", "architectures": ["{{architecture}}"], "vocab_size": 40, "pad_token_id": 0, "num_labels": 3, {{sizes}} }
            """);
    }

    public static TheoryData<string> Architectures() => new(AutoModel.SupportedArchitectures);

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Architecture_builds_from_config_and_gives_task_shaped_logits(string architecture)
    {
        using var model = AutoModel.FromConfig(ConfigFor(architecture));
        Assert.Equal(architecture, model.Architecture);
        Assert.False(model.training);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var ids = torch.tensor(new long[] { 5, 6, 7, 8, 9, 0 }, [2, 3]);
        var output = model.Forward(ids, torch.ones(2, 3, dtype: ScalarType.Int64));
        long[] expected = model.Task switch
        {
            ModelTask.CausalLM => [2, 3, 40],
            ModelTask.SequenceClassification => [2, 3],
            _ => [2, 3, 16],
        };
        Assert.Equal(expected, output.Logits.shape);
        Assert.False(output.Logits.isnan().any().item<bool>());
        Assert.Empty(model.named_buffers());
    }
}
