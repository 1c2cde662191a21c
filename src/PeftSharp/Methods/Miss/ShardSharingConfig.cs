using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.Miss;

/// <summary>
/// The keys MiSS (<see cref="MissConfig"/>) and its predecessor Bone (<see cref="Bone.BoneConfig"/>) share, with PEFT's
/// names and defaults. Neither has a scale α: PEFT's <c>scale_layer</c> warns and keeps 1.
/// </summary>
public abstract record ShardSharingConfig : AdapterConfig
{
    /// <summary>Shard width r: the input is cut into r-wide shards (PEFT default 64; PEFT advises an even r).</summary>
    [JsonPropertyName("r")]
    public int Rank { get; init; } = 64;

    /// <summary>The variant and its initialisation: <c>true</c>, <c>false</c>, <c>"bat"</c> or <c>"mini"</c> (PEFT default true).</summary>
    [JsonPropertyName("init_weights")]
    public ShardInit InitWeights { get; init; } = ShardInit.Balance;

    /// <summary>Which biases train. PEFT also accepts <c>all</c> and <c>&lt;method&gt;_only</c>; PeftSharp supports only <c>none</c> here.</summary>
    [JsonPropertyName("bias")]
    public string Bias { get; init; } = "none";

    /// <summary>Dropout on the adapter input (balance and mini only; bat has none).</summary>
    internal virtual double DropoutProbability => 0;

    /// <summary>Output-side rank of the mini variant.</summary>
    internal virtual int MiniRank => 1;

    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
        {
            throw new ConfigException($"r must be > 0, got {Rank}");
        }
        if (Bias != "none")
        {
            throw new ConfigException($"bias \"{Bias}\" is not supported for {PeftType} in PeftSharp yet; use \"none\"");
        }
    }
}
