using System.Text.Json.Serialization;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.DyLora;

/// <summary>
/// DyLoRA (Valipour et al., EACL 2023, arXiv 2210.07558): one LoRA of maximum rank r trained so that every prefix rank
/// b ≤ r works on its own. Each optimizer step samples b ~ Uniform{1..r} for all layers and runs
/// <c>y = W x + (α/b)·B[:, :b]·A[:b, :]·dropout(x)</c>; with <c>frozen_prefix</c> only row b of A and column b of B get
/// gradients. At inference any b can be chosen (<see cref="IRankTruncatable"/>, <c>peft eval --rank</c>). PEFT has no
/// DyLoRA: the type string is PeftSharp's; keys follow PEFT's LoraConfig where they mean the same.
/// </summary>
public sealed record DyLoraConfig : LoraKeysConfig
{
    /// <summary>PeftSharp's type string (not in PEFT).</summary>
    public const string Type = "DYLORA";

    /// <summary>
    /// A DyLoRA config with the official scripts' defaults: maximum rank r = 8, α = 16 (at rank b the scale is α/b; PEFT's
    /// LoRA default is 8), dropout 0.
    /// </summary>
    public DyLoraConfig() => Alpha = 16;

    [JsonIgnore]
    public override string PeftType => Type;

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
}
