using System.Globalization;

namespace PeftSharp.Bench;

/// <summary><c>--key value</c> options (a flag without value reads as <c>true</c>).</summary>
internal sealed class BenchArgs
{
    private readonly Dictionary<string, string> _values;

    private BenchArgs(Dictionary<string, string> values)
    {
        _values = values;
    }

    public static BenchArgs Parse(IEnumerable<string> argv)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var list = argv.ToList();
        for (var i = 0; i < list.Count; i++)
        {
            if (!list[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new BenchException($"unexpected argument '{list[i]}' (options are --key value)");
            }
            var key = list[i][2..];
            if (i + 1 < list.Count && !list[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                values[key] = list[++i];
            }
            else
            {
                values[key] = "true";
            }
        }
        return new BenchArgs(values);
    }

    public string? Get(string key) => _values.GetValueOrDefault(key);

    public string Require(string key) => Get(key) ?? throw new BenchException($"--{key} is required");

    public int Int(string key, int defaultValue)
    {
        var text = Get(key);
        if (text is null)
        {
            return defaultValue;
        }
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new BenchException($"--{key} must be an integer, got '{text}'");
    }

    /// <summary>The options as they would be passed on again (to a child process).</summary>
    public IEnumerable<string> ToArgv() => _values.SelectMany(kv => new[] { "--" + kv.Key, kv.Value });

    /// <summary>A copy with <paramref name="key"/> set.</summary>
    public BenchArgs With(string key, string value) => new(new Dictionary<string, string>(_values, StringComparer.Ordinal) { [key] = value });
}
