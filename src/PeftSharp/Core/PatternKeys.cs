using System.Text.RegularExpressions;

namespace PeftSharp.Core;

/// <summary>PEFT's per-module overrides (<c>rank_pattern</c>, <c>alpha_pattern</c>): one matching rule for every method.</summary>
public static class PatternKeys
{
    /// <summary>
    /// The value of the first key (in dict order) that matches the end of <paramref name="moduleName"/>, PEFT's
    /// <c>get_pattern_key</c>: <c>(.*\.)?(KEY)$</c> matched from the start of the name; null when none does.
    /// </summary>
    public static T? Find<T>(IReadOnlyDictionary<string, T> pattern, string moduleName) where T : struct
    {
        foreach (var (key, value) in pattern)
        {
            if (Regex.IsMatch(moduleName, "^(.*\\.)?(?:" + key + ")$", RegexOptions.CultureInvariant))
            {
                return value;
            }
        }
        return null;
    }

    /// <summary>Rejects a <c>rank_pattern</c> entry that is not a positive rank, naming its key.</summary>
    public static void ValidateRanks(IReadOnlyDictionary<string, int> rankPattern)
    {
        foreach (var (key, r) in rankPattern)
        {
            if (r <= 0)
            {
                throw new ConfigException($"rank_pattern[\"{key}\"] must be > 0, got {r}");
            }
        }
    }
}
