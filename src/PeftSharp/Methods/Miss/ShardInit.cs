using System.Text.Json;
using System.Text.Json.Serialization;

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
internal sealed class ShardInitConverter : JsonConverter<ShardInit>
{
    public override ShardInit Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.True => ShardInit.Balance,
        JsonTokenType.False => ShardInit.Random,
        JsonTokenType.String => reader.GetString() switch
        {
            "bat" => ShardInit.Bat,
            "mini" => ShardInit.Mini,
            var s => throw new JsonException($"init_weights must be true, false, \"bat\" or \"mini\", got \"{s}\""),
        },
        _ => throw new JsonException($"init_weights must be true, false, \"bat\" or \"mini\", got {reader.TokenType}"),
    };

    public override void Write(Utf8JsonWriter writer, ShardInit value, JsonSerializerOptions options)
    {
        switch (value)
        {
            case ShardInit.Balance:
                writer.WriteBooleanValue(true);
                break;
            case ShardInit.Random:
                writer.WriteBooleanValue(false);
                break;
            case ShardInit.Bat:
                writer.WriteStringValue("bat");
                break;
            case ShardInit.Mini:
                writer.WriteStringValue("mini");
                break;
            default:
                throw new JsonException($"unknown init_weights value {value}");
        }
    }
}
