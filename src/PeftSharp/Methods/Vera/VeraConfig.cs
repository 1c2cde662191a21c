using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.Vera;

/// <summary>
/// VeRA (Kopiczko et al., arXiv 2310.11454): <c>y = W x + λ_b ⊙ (B (λ_d ⊙ (A dropout(x))))</c> with one pair of frozen
/// random matrices <c>A [r, max d_in]</c>, <c>B [max d_out, r]</c> shared by every adapted layer (each slices its size)
/// and two trainable vectors per layer. Keys and defaults are PEFT's <c>VeraConfig</c>.
/// </summary>
public sealed record VeraConfig : AdapterConfig
{
    /// <summary>PEFT type string written to adapter_config.json.</summary>
    public const string Type = "VERA";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Rank r of the shared projections (PEFT default 256: VeRA wants higher ranks than LoRA).</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 256;

    /// <summary>Seed of the generator that draws <c>vera_A</c> / <c>vera_B</c> (PEFT default 0).</summary>
    [JsonPropertyName("projection_prng_key")]
    public long ProjectionPrngKey { get; init; }

    /// <summary>
    /// Whether the projections are saved with the adapter as <c>base_model.vera_A</c> / <c>base_model.vera_B</c> (PEFT
    /// default true). When false they are redrawn from <see cref="ProjectionPrngKey"/> at load time, which reproduces
    /// PyTorch's draw only while libtorch's CPU random stream stays the same: keep it true for files that travel.
    /// </summary>
    [JsonPropertyName("save_projection")]
    public bool SaveProjection { get; init; } = true;

    /// <summary>Dropout probability on the adapter input only (PEFT default 0).</summary>
    [JsonPropertyName("vera_dropout")]
    public double Dropout { get; init; }

    /// <summary>Initial value of every entry of <c>vera_lambda_d</c> (PEFT default 0.1; the paper recommends ≤ 0.1).</summary>
    [JsonPropertyName("d_initial")]
    public double DInitial { get; init; } = 0.1;

    /// <summary>
    /// True when the target stores its weight as <c>[in, out]</c> (GPT-2 Conv1D). PeftSharp follows the layer kind, as
    /// PEFT does after correcting a wrong value with a warning.
    /// </summary>
    [JsonPropertyName("fan_in_fan_out")]
    public bool FanInFanOut { get; init; }

    /// <summary>Which biases train: PEFT has <c>none</c>, <c>all</c>, <c>vera_only</c>; PeftSharp supports <c>none</c>.</summary>
    [JsonPropertyName("bias")]
    public string Bias { get; init; } = "none";

    /// <summary>
    /// True (PEFT default): <c>vera_lambda_b = 0</c> (the adapter starts as a no-op) and <c>vera_lambda_d = d_initial</c>.
    /// False: <c>vera_lambda_b = 1</c>, <c>vera_lambda_d ~ N(0, 1)</c>.
    /// </summary>
    [JsonPropertyName("init_weights")]
    public bool InitWeights { get; init; } = true;

    /// <summary>The shared projections of one added adapter, attached by <see cref="VeraMethod.PrepareAdapter"/>.</summary>
    [JsonIgnore]
    internal VeraProjections? Projections { get; init; }

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (Dropout < 0 || Dropout >= 1 || double.IsNaN(Dropout))
        {
            throw new ConfigException($"vera_dropout must be in [0, 1), got {Dropout}");
        }
        if (!double.IsFinite(DInitial))
        {
            throw new ConfigException($"d_initial must be a finite number, got {DInitial}");
        }
        if (Bias != "none")
        {
            throw new ConfigException(Bias is "all" or "vera_only"
                ? $"bias \"{Bias}\" is not supported yet in PeftSharp for VeRA (only \"none\")"
                : $"bias must be \"none\", \"all\" or \"vera_only\", got \"{Bias}\"");
        }
        if (LayersPattern is { Count: > 0 } && LayersToTransform is not { Count: > 0 })
        {
            throw new ConfigException("layers_pattern is set, so layers_to_transform must be set too");
        }
    }
}
