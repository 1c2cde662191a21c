using System.Text.Json;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>
/// A JSON object of tokenizer.json with the path to it ("tokenizer.json: pre_tokenizer.pretokenizers[1]"), so that
/// every error names the file, the component and the offending key.
/// </summary>
internal readonly struct JsonSection
{
    public JsonSection(string file, string path, JsonElement element)
    {
        File = file;
        Path = path;
        Element = element;
    }

    public string File { get; }

    public string Path { get; }

    public JsonElement Element { get; }

    public bool IsNull => Element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined;

    public string Type => String("type");

    public ConfigException Error(string message) => new($"{File}: {Path}: {message}");

    public ConfigException Unsupported(string kind, IEnumerable<string> supported) =>
        Error($"{kind} type '{Type}' is not supported (supported: {string.Join(", ", supported)})");

    public bool Has(string key) =>
        Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(key, out var v)
        && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined);

    public JsonSection Child(string key)
    {
        if (Element.ValueKind != JsonValueKind.Object || !Element.TryGetProperty(key, out var v))
        {
            return new JsonSection(File, $"{Path}.{key}", default);
        }
        return new JsonSection(File, $"{Path}.{key}", v);
    }

    public IEnumerable<JsonSection> Items(string key)
    {
        var child = Child(key);
        if (child.Element.ValueKind != JsonValueKind.Array)
        {
            throw Error($"'{key}' must be an array, found {child.Element.ValueKind}");
        }
        int i = 0;
        foreach (var item in child.Element.EnumerateArray())
        {
            yield return new JsonSection(File, $"{child.Path}[{i++}]", item);
        }
    }

    public string String(string key)
    {
        var v = Child(key).Element;
        return v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : throw Error($"'{key}' must be a string, found {Describe(v)}");
    }

    public string? OptionalString(string key)
    {
        var v = Child(key).Element;
        return v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Null or JsonValueKind.Undefined => null,
            _ => throw Error($"'{key}' must be a string or null, found {Describe(v)}"),
        };
    }

    public bool Bool(string key, bool defaultValue)
    {
        var v = Child(key).Element;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null or JsonValueKind.Undefined => defaultValue,
            _ => throw Error($"'{key}' must be true or false, found {Describe(v)}"),
        };
    }

    public bool? OptionalBool(string key)
    {
        var v = Child(key).Element;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null or JsonValueKind.Undefined => null,
            _ => throw Error($"'{key}' must be true, false or null, found {Describe(v)}"),
        };
    }

    public int Int(string key, int? defaultValue = null)
    {
        var v = Child(key).Element;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n))
        {
            return n;
        }
        if (v.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined && defaultValue.HasValue)
        {
            return defaultValue.Value;
        }
        throw Error($"'{key}' must be an integer, found {Describe(v)}");
    }

    /// <summary>A single character value (Metaspace "replacement", Strip "content").</summary>
    public string Char(string key, string? defaultValue = null)
    {
        var s = Has(key) || defaultValue == null ? String(key) : defaultValue;
        if (s.EnumerateRunes().Count() != 1)
        {
            throw Error($"'{key}' must be a single character, found \"{s}\"");
        }
        return s;
    }

    /// <summary>A split pattern {"String": "..."} or {"Regex": "..."}, as a code-point regex.</summary>
    public CodePointRegex Pattern(string key)
    {
        var p = Child(key);
        if (p.Has("String"))
        {
            return CodePointRegex.ForLiteral(p.String("String"));
        }
        if (p.Has("Regex"))
        {
            var pattern = p.String("Regex");
            try
            {
                return new CodePointRegex(pattern);
            }
            catch (ArgumentException e)
            {
                throw p.Error($"regex /{pattern}/ is not valid in .NET: {e.Message}");
            }
        }
        throw p.Error("pattern must be {\"String\": ...} or {\"Regex\": ...}");
    }

    private static string Describe(JsonElement v) => v.ValueKind == JsonValueKind.Undefined ? "nothing" : v.ToString() is { Length: < 40 } s ? $"{v.ValueKind} {s}" : v.ValueKind.ToString();
}
