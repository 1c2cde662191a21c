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
}
