using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.Hydra;

/// <summary>
/// Hydra (Kim et al., "Hydra: Multi-head Low-rank Adaptation for Parameter Efficient Fine-tuning", arXiv 2309.06922):
/// a parallel low-rank branch on the layer input and a sequential one on the layer output,
/// <c>y = h + s·(B_p·A_p·x) + s·(B_s·A_s·h)</c> with <c>h = W x + b</c>. PEFT has no Hydra; the <c>peft_type</c> is
/// <c>HYDRA</c> and the keys follow PEFT's conventions (<c>r</c>, method-prefixed <c>hydra_*</c>, <c>init_weights</c>).
/// </summary>
public sealed record HydraConfig : AdapterConfig
{
    /// <summary>PEFT-style type string written to adapter_config.json.</summary>
    public const string Type = "HYDRA";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Rank r_p of the parallel branch: <c>A_p [r_p, d_in]</c>, <c>B_p [d_out, r_p]</c> (default 8). Key <c>r</c>.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>Rank r_s of the sequential branch: <c>A_s [r_s, d_out]</c>, <c>B_s [d_out, r_s]</c> (default 8). Key <c>sequential_r</c>.</summary>
    [JsonPropertyName("sequential_r")]
    public int SequentialRank { get; init; } = 8;

    /// <summary>
    /// The scale s on both branches (default 1, as the official NLU code, which has no scale; its VTAB configs use 0.1).
    /// A plain factor, not α/r: the two branches have different ranks. Key <c>hydra_scale</c>.
    /// </summary>
    [JsonPropertyName("hydra_scale")]
    public double Scale { get; init; } = 1.0;

    /// <summary>Dropout between the down and the up projection of each branch, training only (default 0). Key <c>hydra_dropout</c>.</summary>
    [JsonPropertyName("hydra_dropout")]
    public double Dropout { get; init; }

    /// <summary>
    /// Biases on the four projections (the official VTAB variant: down biases d, up biases u), default false (the NLU
    /// variant). Merging them needs a base bias to absorb them. Key <c>hydra_bias</c>.
    /// </summary>
    [JsonPropertyName("hydra_bias")]
    public bool BranchBias { get; init; }

    /// <summary><c>true</c> (default), <c>"xavier"</c> or <c>false</c>; see <see cref="HydraInit"/>. Key <c>init_weights</c>.</summary>
    [JsonPropertyName("init_weights")]
    public HydraInit InitWeights { get; init; } = HydraInit.Kaiming;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (SequentialRank <= 0)
        {
            throw new ConfigException($"sequential_r must be > 0, got {SequentialRank}");
        }
        if (!double.IsFinite(Scale) || Scale == 0)
        {
            throw new ConfigException($"hydra_scale must be a finite non-zero number, got {Scale}");
        }
        if (!(Dropout >= 0 && Dropout < 1))
        {
            throw new ConfigException($"hydra_dropout must be in [0, 1), got {Dropout}");
        }
    }
}

/// <summary>How Hydra's projections start. On disk PEFT-style: <c>true</c>, <c>"xavier"</c> or <c>false</c>.</summary>
[JsonConverter(typeof(HydraInitConverter))]
public enum HydraInit
{
    /// <summary><c>true</c>: down weights Kaiming-uniform (a = √5), up weights and all biases 0 (official NLU code): output = base.</summary>
    Kaiming,

    /// <summary><c>"xavier"</c>: down weights Xavier-uniform, up weights and all biases 0 (official VTAB code): output = base.</summary>
    Xavier,

    /// <summary><c>false</c>: every projection keeps TorchSharp's Linear init (Kaiming weights, uniform biases): not a no-op (for tests).</summary>
    Random,
}

internal sealed class HydraInitConverter()
    : BoolOrNameConverter<HydraInit>("init_weights", HydraInit.Kaiming, HydraInit.Random, ("xavier", HydraInit.Xavier));
