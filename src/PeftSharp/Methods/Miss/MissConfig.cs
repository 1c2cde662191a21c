using System.Text.Json.Serialization;

namespace PeftSharp.Methods.Miss;

/// <summary>
/// MiSS, Matrix Shard Sharing (Kang et al., arXiv 2409.15371; PEFT <c>MissConfig</c>, <c>peft_type</c> <c>MISS</c>).
/// Balance (default): <c>y = W x + Dᵀ Σₖ xₖ</c>, D <c>[r, d_out]</c> zero-initialised, xₖ the r-wide input shards (the input is
/// zero-padded when r does not divide d_in). <c>"bat"</c>: block-wise <c>W'ᵢₖ = Wᵢₖ(I + bᵢ) + bᵢ</c>. <c>"mini"</c>: D
/// <c>[r, mini_r]</c> tiled d_out/mini_r times.
/// </summary>
public sealed record MissConfig : ShardSharingConfig
{
    /// <summary>PEFT type string written to adapter_config.json.</summary>
    public const string Type = "MISS";

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Dropout probability on the adapter input of the balance and mini variants (PEFT default 0).</summary>
    [JsonPropertyName("miss_dropout")]
    public double Dropout { get; init; }

    /// <summary>Width of the mini block along the output dimension; d_out must be divisible by it (PEFT default 1).</summary>
    [JsonPropertyName("mini_r")]
    public int MiniR { get; init; } = 1;

    internal override double DropoutProbability => Dropout;

    internal override int MiniRank => MiniR;

    public override void Validate()
    {
        base.Validate();
        if (Dropout < 0 || Dropout >= 1 || double.IsNaN(Dropout))
        {
            throw new ConfigException($"miss_dropout must be in [0, 1), got {Dropout}");
        }
        if (MiniR <= 0)
        {
            throw new ConfigException($"mini_r must be > 0, got {MiniR}");
        }
    }
}
