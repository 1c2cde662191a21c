using System.Globalization;
using System.Text.Json;

namespace PeftSharp.Data;

/// <summary>A row that does not fit its file's format; the reader adds the file and line.</summary>
internal sealed class BadRowException(string message) : PeftException(message);

/// <summary>A label as written: an integer (JSON number, or digits in CSV/JSON text) or a class name.</summary>
internal readonly record struct RawLabel(int? Id, string? Name);

/// <summary>The fields of one row of a JSON Lines or CSV/TSV file, read by name.</summary>
internal interface IRow
{
    /// <summary>Names of the fields present (JSON: not null).</summary>
    IReadOnlyCollection<string> Fields { get; }

    bool Has(string name);

    /// <summary>A required text field.</summary>
    string String(string name);

    /// <summary>A text field that may be absent or null (then "").</summary>
    string OptionalString(string name);

    RawLabel Label(string name);

    IReadOnlyList<ChatTurn> Messages(string name, string roleKey, string contentKey);
}

internal static class Labels
{
    /// <summary>Digits only: "0", "17" (a label written as text in CSV, or quoted in JSON).</summary>
    public static RawLabel Parse(string text, string name)
    {
        if (text.Length == 0)
        {
            throw new BadRowException($"'{name}' is empty");
        }
        if (text.All(char.IsAsciiDigit))
        {
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int id)
                ? new RawLabel(id, null)
                : throw new BadRowException($"'{name}' {text} is too large for a class id");
        }
        return new RawLabel(null, text);
    }
}

/// <summary>One JSON object of a JSON Lines file.</summary>
internal sealed class JsonRow(JsonElement obj) : IRow
{
    public IReadOnlyCollection<string> Fields { get; } =
        obj.EnumerateObject().Where(p => p.Value.ValueKind != JsonValueKind.Null).Select(p => p.Name).ToArray();

    public bool Has(string name) => obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public string String(string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            throw new BadRowException($"missing field '{name}'");
        }
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new BadRowException($"'{name}' must be a string, found {Describe(v)}");
    }

    public string OptionalString(string name) => Has(name) ? String(name) : "";

    public RawLabel Label(string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            throw new BadRowException($"missing field '{name}'");
        }
        return v.ValueKind switch
        {
            JsonValueKind.Number when v.TryGetInt32(out int id) && id >= 0 => new RawLabel(id, null),
            JsonValueKind.String => Labels.Parse(v.GetString()!, name),
            _ => throw new BadRowException($"'{name}' must be a class id (integer ≥ 0) or a class name, found {Describe(v)}"),
        };
    }

    public IReadOnlyList<ChatTurn> Messages(string name, string roleKey, string contentKey)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            throw new BadRowException($"missing field '{name}'");
        }
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0)
        {
            throw new BadRowException($"'{name}' must be a non-empty list of {{\"{roleKey}\", \"{contentKey}\"}}, found {Describe(v)}");
        }
        var turns = new List<ChatTurn>();
        int i = 0;
        foreach (var m in v.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object
                || !m.TryGetProperty(roleKey, out var role) || role.ValueKind != JsonValueKind.String
                || !m.TryGetProperty(contentKey, out var content) || content.ValueKind != JsonValueKind.String)
            {
                throw new BadRowException($"{name}[{i}] must be {{\"{roleKey}\": string, \"{contentKey}\": string}}, found {Describe(m)}");
            }
            turns.Add(new ChatTurn(role.GetString()!, content.GetString()!));
            i++;
        }
        return turns;
    }

    private static string Describe(JsonElement v)
    {
        var text = v.GetRawText();
        return text.Length <= 60 ? $"{v.ValueKind} {text}" : $"{v.ValueKind} {text[..57]}...";
    }
}

/// <summary>One record of a CSV/TSV file, read through its header.</summary>
internal sealed class CsvRow(IReadOnlyDictionary<string, int> header, IReadOnlyList<string> values) : IRow
{
    public IReadOnlyCollection<string> Fields => header.Keys.ToArray();

    public bool Has(string name) => header.ContainsKey(name);

    public string String(string name) =>
        header.TryGetValue(name, out int i) ? values[i] : throw new BadRowException($"missing column '{name}'");

    public string OptionalString(string name) => header.TryGetValue(name, out int i) ? values[i] : "";

    public RawLabel Label(string name) => Labels.Parse(String(name), name);

    public IReadOnlyList<ChatTurn> Messages(string name, string roleKey, string contentKey) =>
        throw new BadRowException("the chat format needs JSON Lines (a list of messages per row)");
}
