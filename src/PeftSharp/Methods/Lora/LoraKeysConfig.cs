using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// The keys of PEFT's <c>LoraConfig</c> that every LoRA-shaped method reuses with LoRA's meaning: <c>r</c>,
/// <c>lora_alpha</c> and <c>lora_dropout</c>, declared, validated and serialised here once. A method whose defaults differ
/// from PEFT's (SoRA's α = 16, MoLE's dropout 0.05) sets them in its constructor. Methods that also scale by α/√r derive
/// from <see cref="RsLoraKeysConfig"/>.
/// </summary>
public abstract record LoraKeysConfig : AdapterConfig
{
    /// <summary>Rank r of the factors B <c>[d_out, r]</c> and A <c>[r, d_in]</c> (PEFT default 8). PEFT: <c>r</c>.</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 8;

    /// <summary>Scale numerator α, <c>s = α / r</c> (PEFT default 8; a method may default otherwise). PEFT: <c>lora_alpha</c>.</summary>
    [JsonPropertyName("lora_alpha")]
    public double Alpha { get; init; } = 8;

    /// <summary>Dropout probability on the adapter input only (PEFT default 0). PEFT: <c>lora_dropout</c>.</summary>
    [JsonPropertyName("lora_dropout")]
    public double Dropout { get; init; }

    /// <summary>The scale s applied to B·A: α / r.</summary>
    [JsonIgnore]
    public virtual double Scaling => Alpha / Rank;

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
        // "lora_alpha": 1e999 parses as ∞; s would then be ∞ and the adapter's output NaN, so it is refused as well.
        if (double.IsInfinity(Alpha))
        {
            throw new ConfigException($"lora_alpha must be finite, got {Alpha}");
        }
        if (!(Dropout >= 0 && Dropout < 1))
        {
            throw new ConfigException($"lora_dropout must be in [0, 1), got {Dropout}");
        }
    }
}

/// <summary><see cref="LoraKeysConfig"/> plus PEFT's <c>use_rslora</c>: the scale becomes α/√r (Kalajdzievski, arXiv 2312.03732).</summary>
public abstract record RsLoraKeysConfig : LoraKeysConfig
{
    /// <summary>Scale by α/√r instead of α/r (PEFT default false). PEFT: <c>use_rslora</c>.</summary>
    [JsonPropertyName("use_rslora")]
    public bool UseRsLora { get; init; }

    /// <summary>The scale s applied to B·A: α / r, or α / √r with rsLoRA.</summary>
    public override double Scaling => UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;
}
