using System.Text.Json;
using System.Text.Json.Serialization;

namespace PeftSharp.Core;

/// <summary>
/// Reads and writes, as an enum, a PEFT key whose value is <c>true</c>, <c>false</c> or one of a few names (LoKr's,
/// Hydra's and MiSS/Bone's <c>init_weights</c>). A wrong value is a <see cref="JsonException"/> naming the key and
/// listing the accepted values.
/// </summary>
internal abstract class BoolOrNameConverter<TEnum> : JsonConverter<TEnum> where TEnum : struct, Enum
{
    private readonly string _key;
    private readonly TEnum _whenTrue;
    private readonly TEnum _whenFalse;
    private readonly (string Name, TEnum Value)[] _names;
    private readonly string _accepted;

    protected BoolOrNameConverter(string key, TEnum whenTrue, TEnum whenFalse, params (string Name, TEnum Value)[] names)
    {
        _key = key;
        _whenTrue = whenTrue;
        _whenFalse = whenFalse;
        _names = names;
        string[] accepted = ["true", "false", .. names.Select(n => $"\"{n.Name}\"")];
        _accepted = string.Join(", ", accepted[..^1]) + " or " + accepted[^1];
    }

    public override TEnum Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.True:
                return _whenTrue;
            case JsonTokenType.False:
                return _whenFalse;
            case JsonTokenType.String:
                var text = reader.GetString();
                foreach (var (name, value) in _names)
                {
                    if (name == text)
                    {
                        return value;
                    }
                }
                throw new JsonException($"{_key} must be {_accepted}, got \"{text}\"");
            default:
                throw new JsonException($"{_key} must be {_accepted}, got {reader.TokenType}");
        }
    }

    public override void Write(Utf8JsonWriter writer, TEnum value, JsonSerializerOptions options)
    {
        if (value.Equals(_whenTrue) || value.Equals(_whenFalse))
        {
            writer.WriteBooleanValue(value.Equals(_whenTrue));
            return;
        }
        foreach (var (name, named) in _names)
        {
            if (value.Equals(named))
            {
                writer.WriteStringValue(name);
                return;
            }
        }
        throw new JsonException($"unknown {_key} value {value}");
    }
}
