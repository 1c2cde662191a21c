using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.TLora;

/// <summary>
/// Transformed LoRA (Tao, Takida, Murata, Zhao, Mitsufuji, "Transformed Low-rank Adaptation via Tensor Decomposition and
/// Its Applications to Text-to-image Models", arXiv 2501.08727): <c>W' = W·T + ΔR</c>, a full-rank input-side transform T
/// in tensor-train-matrix (TT) format, initialised to the identity, plus a residual ΔR in tensor-ring-matrix (TR) format
/// with one zero core. The formats, the side of T and the init are the reference's reconstruction (§16a): no code or method
/// text was available. Not in PEFT: <c>peft_type</c> <c>TLORA</c>.
/// </summary>
public sealed record TLoraConfig : AdapterConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "TLORA";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Tensor-ring rank q of the residual: every residual core is <c>[q, o_k, i_k, q]</c> (default 4). Key <c>r</c>.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 4;

    /// <summary>Tensor-train rank ρ of the transform: cores <c>[ρ_{k−1}, n_k, n_k, ρ_k]</c>, ρ₀ = ρ_K = 1 (default 1: T is a Kronecker product). Key <c>transform_r</c>.</summary>
    [JsonPropertyName("transform_r")]
    public int TransformRank { get; init; } = 1;

    /// <summary>
    /// K, how many factors d_in and d_out are split into (each as balanced as its divisors allow, e.g. 4096 → 16·16·16,
    /// 768 → 8·8·12; a prime gives 1·…·p). Default 3. Key <c>num_cores</c>.
    /// </summary>
    [JsonPropertyName("num_cores")]
    public int NumCores { get; init; } = 3;

    /// <summary><c>true</c> (default): T = I and the first residual core 0, so the output equals the base; <c>false</c>: the residual starts random. Key <c>init_weights</c>.</summary>
    [JsonPropertyName("init_weights")]
    public bool InitWeights { get; init; } = true;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (TransformRank <= 0)
        {
            throw new ConfigException($"transform_r must be > 0, got {TransformRank}");
        }
        if (NumCores < 1 || NumCores > 8)
        {
            throw new ConfigException($"num_cores must be in [1, 8], got {NumCores}");
        }
    }
}
