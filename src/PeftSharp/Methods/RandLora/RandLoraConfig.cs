using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.RandLora;

/// <summary>
/// RandLoRA (Albert et al., arXiv 2502.00987, ICLR 2025): a full-rank update <c>ΔW = s · Σ_j B_j Λ_j A Γ_j</c> built from
/// frozen random bases shared by every adapted layer, of which only the diagonal scalings <c>randlora_lambda</c> and
/// <c>randlora_gamma</c> train; <c>s = randlora_alpha / r</c>. Keys and defaults are PEFT's <c>RandLoraConfig</c>.
/// </summary>
public sealed record RandLoraConfig : AdapterConfig
{
    /// <summary>PEFT type string written to adapter_config.json.</summary>
    public const string Type = "RANDLORA";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>
    /// Rank r of each random basis (PEFT default 32). A layer uses <c>n = ⌈min(d_in, d_out) / r⌉</c> bases, so a smaller r
    /// means more trainable parameters.
    /// </summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 32;

    /// <summary>Scale numerator α; the update is multiplied by α / r (PEFT default 640, about 20·r).</summary>
    [JsonPropertyName("randlora_alpha")]
    public double Alpha { get; init; } = 640;

    /// <summary>Dropout probability on the adapter input only (PEFT default 0).</summary>
    [JsonPropertyName("randlora_dropout")]
    public double Dropout { get; init; }

    /// <summary>Seed of the generator that draws <c>randlora_A</c> / <c>randlora_B</c> (PEFT default 0).</summary>
    [JsonPropertyName("projection_prng_key")]
    public long ProjectionPrngKey { get; init; }

    /// <summary>
    /// Whether the bases are saved with the adapter (PEFT default true). When false they are redrawn from
    /// <see cref="ProjectionPrngKey"/> at load time, which reproduces PyTorch's draw only while libtorch's CPU random
    /// stream stays the same: keep it true for files that travel.
    /// </summary>
    [JsonPropertyName("save_projection")]
    public bool SaveProjection { get; init; } = true;

    /// <summary>Ternary bases {−1, 0, +1} with P(±1) = 1/6 each, normalised to unit std (PEFT default false).</summary>
    [JsonPropertyName("sparse")]
    public bool Sparse { get; init; }

    /// <summary>Ternary bases with P(±1) = 1/(2√d), d the smaller of the largest target's sizes (PEFT default false; wins over <see cref="Sparse"/>).</summary>
    [JsonPropertyName("very_sparse")]
    public bool VerySparse { get; init; }

    /// <summary>True when the target stores its weight as <c>[in, out]</c> (GPT-2 Conv1D); PeftSharp follows the layer kind, as PEFT does after correcting it.</summary>
    [JsonPropertyName("fan_in_fan_out")]
    public bool FanInFanOut { get; init; }

    /// <summary>Which biases train: PEFT has <c>none</c>, <c>all</c>, <c>randlora_only</c>; PeftSharp supports <c>none</c>.</summary>
    [JsonPropertyName("bias")]
    public string Bias { get; init; } = "none";

    /// <summary>
    /// True (PEFT default): <c>randlora_lambda = 0</c> (the adapter starts as a no-op) and <c>randlora_gamma</c> constant
    /// <c>1 / max(n, d)</c>. False: <c>randlora_lambda ~ N(0, 1)</c>, <c>randlora_gamma = 1 / max(d_in, d_out)</c>.
    /// </summary>
    [JsonPropertyName("init_weights")]
    public bool InitWeights { get; init; } = true;

    /// <summary>α / r.</summary>
    [JsonIgnore]
    public double Scaling => Alpha / Rank;

    /// <summary>The shared bases of one added adapter, attached by <see cref="RandLoraMethod.PrepareAdapter"/>.</summary>
    [JsonIgnore]
    internal RandLoraBases? Bases { get; init; }

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (Alpha <= 0 || !double.IsFinite(Alpha))
        {
            throw new ConfigException($"randlora_alpha must be > 0, got {Alpha}");
        }
        if (Dropout < 0 || Dropout >= 1 || double.IsNaN(Dropout))
        {
            throw new ConfigException($"randlora_dropout must be in [0, 1), got {Dropout}");
        }
        if (Bias != "none")
        {
            throw new ConfigException(Bias is "all" or "randlora_only"
                ? $"bias \"{Bias}\" is not supported yet in PeftSharp for RandLoRA (only \"none\")"
                : $"bias must be \"none\", \"all\" or \"randlora_only\", got \"{Bias}\"");
        }
    }
}
