using System.Text.Json.Serialization;
using PeftSharp.Methods.Miss;

namespace PeftSharp.Methods.Bone;

/// <summary>
/// Bone, Block-Affine adaptation (Kang, arXiv 2409.15371 v1; PEFT ≤ 0.18 <c>BoneConfig</c>, <c>peft_type</c> <c>BONE</c>).
/// PEFT 0.19 removed it in favour of MiSS, whose balance and <c>"bat"</c> variants compute the same thing; Bone files keep
/// their own type and <c>bone_block</c> keys. No dropout, no mini variant.
/// </summary>
public sealed record BoneConfig : ShardSharingConfig
{
    /// <summary>PEFT type string written to adapter_config.json.</summary>
    public const string Type = "BONE";

    [JsonIgnore]
    public override string PeftType => Type;

    public override void Validate()
    {
        base.Validate();
        if (InitWeights == ShardInit.Mini)
        {
            throw new ConfigException("init_weights \"mini\" exists only for MISS; BONE accepts true, false or \"bat\"");
        }
    }
}
