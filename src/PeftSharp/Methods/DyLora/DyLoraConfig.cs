using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.DyLora;

/// <summary>
/// DyLoRA (Valipour et al., EACL 2023, arXiv 2210.07558): one LoRA of maximum rank r trained so that every prefix rank
/// b ≤ r works on its own. Each optimizer step samples b ~ Uniform{1..r} for all layers and runs
/// <c>y = W x + (α/b)·B[:, :b]·A[:b, :]·dropout(x)</c>; with <c>frozen_prefix</c> only row b of A and column b of B get
/// gradients. At inference any b can be chosen (<see cref="IRankTruncatable"/>, <c>peft eval --rank</c>). PEFT has no
/// DyLoRA: the type string is PeftSharp's; keys follow PEFT's LoraConfig where they mean the same.
/// </summary>
public sealed record DyLoraConfig : AdapterConfig
{
    /// <summary>PeftSharp's type string (not in PEFT).</summary>
    public const string Type = "DYLORA";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Maximum rank r (PEFT-like key <c>r</c>; default 8, the official scripts' value).</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>Scale numerator α; at rank b the scale is α/b (official scripts: 16).</summary>
    [JsonPropertyName("lora_alpha")]
    public double Alpha { get; init; } = 16;

    /// <summary>Dropout on the adapter input (default 0).</summary>
    [JsonPropertyName("lora_dropout")]
    public double Dropout { get; init; }

    /// <summary>
    /// true (default, the official training mode): rows/columns below b are detached, so only component b is updated by the
    /// gradient of a step; false: every component ≤ b gets gradients (the paper's un-frozen variant).
    /// </summary>
    [JsonPropertyName("frozen_prefix")]
    public bool FrozenPrefix { get; init; } = true;

    /// <summary>true: A Kaiming-uniform, B = 0 (identity at init); false: both Kaiming-uniform.</summary>
    [JsonPropertyName("init_lora_weights")]
    public bool InitLoraWeights { get; init; } = true;

    /// <summary>The scale at rank <paramref name="b"/>: α/b (A and B each times √(r/b) on top of α/r).</summary>
    public double ScalingAt(int b) => Alpha / b;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (!(Alpha > 0))
        {
            throw new ConfigException($"lora_alpha must be > 0, got {Alpha}");
        }
        if (Dropout < 0 || Dropout >= 1 || double.IsNaN(Dropout))
        {
            throw new ConfigException($"lora_dropout must be in [0, 1), got {Dropout}");
        }
    }
}
