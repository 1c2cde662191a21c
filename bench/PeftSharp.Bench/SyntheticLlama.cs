using System.Globalization;
using PeftSharp.Models;

namespace PeftSharp.Bench;

/// <summary>
/// Llama shapes for models the repository does not ship: built with <see cref="AutoModel.FromConfig"/> (random init)
/// for timing, or written as a checkpoint for the load-memory check. Tied embeddings, no GQA, head_dim 64.
/// </summary>
internal static class SyntheticLlama
{
    /// <summary>~110M parameters (85M in the 12 decoder layers, 24.6M in the tied 32000×768 embedding).</summary>
    public static ModelConfig Config100M() => Config("synthetic-llama-100m", vocab: 32000, hidden: 768, intermediate: 2048, layers: 12, heads: 12);

    /// <summary>~517M parameters (476M in 24 layers, 41M in the tied 32000×1280 embedding): about 2.07 GB in F32.</summary>
    public static ModelConfig Config500M() => Config("synthetic-llama-500m", vocab: 32000, hidden: 1280, intermediate: 3456, layers: 24, heads: 20);

    /// <summary>~50M parameters, for a quick run of the load-memory path.</summary>
    public static ModelConfig Config50M() => Config("synthetic-llama-50m", vocab: 32000, hidden: 512, intermediate: 1376, layers: 8, heads: 8);

    public static ModelConfig ForLoadSize(string size) => size switch
    {
        "500m" => Config500M(),
        "50m" => Config50M(),
        _ => throw new BenchException($"--load-size must be 500m or 50m, got '{size}'"),
    };

    public static ModelConfig Config(string name, int vocab, int hidden, int intermediate, int layers, int heads)
    {
        var json = string.Create(CultureInfo.InvariantCulture, $$"""
            {
              "architectures": ["LlamaForCausalLM"],
              "model_type": "llama",
              "vocab_size": {{vocab}},
              "hidden_size": {{hidden}},
              "intermediate_size": {{intermediate}},
              "num_hidden_layers": {{layers}},
              "num_attention_heads": {{heads}},
              "num_key_value_heads": {{heads}},
              "hidden_act": "silu",
              "max_position_embeddings": 2048,
              "rms_norm_eps": 1e-05,
              "rope_theta": 10000.0,
              "tie_word_embeddings": true,
              "bos_token_id": 1,
              "eos_token_id": 2,
              "torch_dtype": "float32"
            }
            """);
        return ModelConfig.Parse(json, name);
    }
}
