using System.Text.Json.Serialization;
using PeftSharp.Core;

namespace PeftSharp.Methods.Miss;

/// <summary>
/// PEFT's <c>init_weights</c> for MiSS and Bone: it picks the variant as well as the initialisation. On disk it is
/// <c>true</c>, <c>false</c>, <c>"bat"</c> or <c>"mini"</c> (MiSS only).
/// </summary>
[JsonConverter(typeof(ShardInitConverter))]
public enum ShardInit
{
    /// <summary><c>true</c> (default; MiSS "balance", Bone's plain form): a zero block D <c>[r, d_out]</c> shared by every input shard.</summary>
    Balance,

    /// <summary><c>false</c>: the balance shape, Kaiming-uniform (a = √5) instead of zeros, so the adapter is not a no-op (for tests).</summary>
    Random,

    /// <summary><c>"bat"</c>: one zero <c>r×r</c> block per output block-row, <c>W'ᵢₖ = Wᵢₖ(I + bᵢ) + bᵢ</c> (the weight guide).</summary>
    Bat,

    /// <summary><c>"mini"</c> (MiSS only): a zero block <c>[r, mini_r]</c> tiled along the output dimension.</summary>
    Mini,
}

/// <summary>Reads and writes <see cref="ShardInit"/> as PEFT's bool-or-string value.</summary>
internal sealed class ShardInitConverter()
    : BoolOrNameConverter<ShardInit>("init_weights", ShardInit.Balance, ShardInit.Random, ("bat", ShardInit.Bat), ("mini", ShardInit.Mini));
