using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace PeftSharp.Core;

/// <summary>
/// PEFT's <c>target_modules</c> / <c>exclude_modules</c>: either a list of names (a module matches when its qualified
/// name equals an entry or ends with <c>"." + entry</c>) or one regex that must match the whole qualified name, or the
/// special value <c>all-linear</c>.
/// </summary>
[JsonConverter(typeof(TargetModulesConverter))]
public sealed class TargetModules : IEquatable<TargetModules>
{
    /// <summary>PEFT's shorthand for every linear layer except the output head.</summary>
    public const string AllLinear = "all-linear";

    private Regex? _regex;

    private TargetModules(IReadOnlyList<string>? names, string? pattern)
    {
        Names = names;
        Pattern = pattern;
    }

    /// <summary>The suffix list (null when this is a regex).</summary>
    public IReadOnlyList<string>? Names { get; }

    /// <summary>The regex (null when this is a list).</summary>
    public string? Pattern { get; }

    public bool IsAllLinear => Pattern == AllLinear;

    public static TargetModules Of(params string[] names) => new(names, null);

    public static TargetModules Regex(string pattern) => new(null, pattern);

    public static TargetModules AllLinearLayers => new(null, AllLinear);

    /// <summary>Whether a qualified module name matches, by PEFT's rules (list: exact or dotted suffix; string: full regex match).</summary>
    public bool Matches(string qualifiedName)
    {
        if (Names is not null)
        {
            foreach (var n in Names)
            {
                if (qualifiedName == n || qualifiedName.EndsWith("." + n, StringComparison.Ordinal))
                {
                    return true;
                }
            }
            return false;
        }
        _regex ??= new Regex("^(?:" + Pattern + ")$", RegexOptions.CultureInvariant);
        return _regex.IsMatch(qualifiedName);
    }

    public override string ToString() => Names is not null ? "[" + string.Join(", ", Names) + "]" : $"\"{Pattern}\"";

    public bool Equals(TargetModules? other) =>
        other is not null && Pattern == other.Pattern &&
        (Names is null ? other.Names is null : other.Names is not null && Names.SequenceEqual(other.Names));

    public override bool Equals(object? obj) => Equals(obj as TargetModules);

    public override int GetHashCode() => Pattern?.GetHashCode(StringComparison.Ordinal) ?? Names!.Count;

    private sealed class TargetModulesConverter : JsonConverter<TargetModules>
    {
        public override TargetModules? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.Null:
                    return null;
                case JsonTokenType.String:
                    var pattern = reader.GetString()!;
                    try
                    {
                        _ = new Regex(pattern);
                    }
                    catch (ArgumentException e)
                    {
                        throw new JsonException($"'{pattern}' is not a valid regular expression: {e.Message}");
                    }
                    return new TargetModules(null, pattern);
                case JsonTokenType.StartArray:
                    var list = JsonSerializer.Deserialize<List<string>>(ref reader, options)!;
                    return new TargetModules(list, null);
                default:
                    throw new JsonException($"expected a list of module names or a regex string, got {reader.TokenType}");
            }
        }

        public override void Write(Utf8JsonWriter writer, TargetModules value, JsonSerializerOptions options)
        {
            if (value.Names is not null)
            {
                JsonSerializer.Serialize(writer, value.Names.ToList(), options);
            }
            else
            {
                writer.WriteStringValue(value.Pattern);
            }
        }
    }
}
