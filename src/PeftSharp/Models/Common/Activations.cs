using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Models.Common;

/// <summary>transformers' <c>ACT2FN</c> names mapped to TorchSharp functions.</summary>
public static class Activations
{
    /// <summary>The names accepted in <c>hidden_act</c> / <c>activation_function</c>.</summary>
    public static IReadOnlyList<string> Supported { get; } =
        ["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "quick_gelu", "relu", "silu", "swish", "tanh"];

    /// <summary>
    /// The activation called <paramref name="name"/>: <c>gelu</c> is the exact erf GELU; <c>gelu_new</c>,
    /// <c>gelu_pytorch_tanh</c> and <c>gelu_fast</c> the tanh approximation
    /// <c>0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))</c>; <c>quick_gelu</c> <c>x·σ(1.702·x)</c>; <c>silu</c>/<c>swish</c>
    /// <c>x·σ(x)</c>. <paramref name="configKey"/> and <paramref name="source"/> name the culprit in the error.
    /// </summary>
    public static Func<Tensor, Tensor> Get(string name, string configKey, string source)
    {
        return name switch
        {
            "gelu" => x => nn.functional.gelu(x),
            "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, GELU.Approximate.tanh),
            "quick_gelu" => x => x * torch.sigmoid(1.702 * x),
            "relu" => x => nn.functional.relu(x),
            "silu" or "swish" => x => nn.functional.silu(x),
            "tanh" => x => torch.tanh(x),
            _ => throw new ConfigException(
                $"{source}: '{configKey}' = '{name}' is not supported; supported: {string.Join(", ", Supported)}"),
        };
    }
}
