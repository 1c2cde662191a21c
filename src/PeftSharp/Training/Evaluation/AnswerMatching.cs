using System.Globalization;
using System.Text.RegularExpressions;

namespace PeftSharp.Training.Evaluation;

/// <summary>
/// GSM8K-style scoring: the answer is the number after the last <c>####</c>, or, when there is none, the last number in
/// the text. Numbers may carry a sign, thousands commas, a decimal part, a leading <c>$</c> or a trailing <c>.</c>;
/// they are compared as decimals, so <c>18</c>, <c>18.0</c> and <c>$18</c> match.
/// </summary>
public static partial class AnswerMatching
{
    [GeneratedRegex(@"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")]
    private static partial Regex NumberPattern();

    /// <summary>The final numeric answer of <paramref name="text"/>, normalised (no commas, no trailing zeros), or null.</summary>
    public static string? FinalNumber(string text)
    {
        var marker = text.LastIndexOf("####", StringComparison.Ordinal);
        if (marker >= 0)
        {
            var after = NumberPattern().Match(text, marker + 4);
            if (after.Success)
            {
                return Normalise(after.Value);
            }
        }
        var matches = NumberPattern().Matches(text);
        return matches.Count > 0 ? Normalise(matches[^1].Value) : null;
    }

    /// <summary>True when both texts have a final number and the numbers are equal.</summary>
    public static bool ExactMatch(string prediction, string reference) =>
        FinalNumber(prediction) is { } p && FinalNumber(reference) is { } r && p == r;

    /// <summary>Fraction of pairs whose final numbers match.</summary>
    public static double ExactMatchRate(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        if (predictions.Count != references.Count || references.Count == 0)
        {
            throw new PeftException($"exact match needs two equally long, non-empty lists; got {predictions.Count} predictions and {references.Count} references");
        }
        return (double)predictions.Zip(references).Count(x => ExactMatch(x.First, x.Second)) / references.Count;
    }

    private static string? Normalise(string number)
    {
        var clean = number.Replace(",", "", StringComparison.Ordinal);
        if (!decimal.TryParse(clean, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
        {
            return null;
        }
        // "G29"-style: drop trailing zeros so 18.0 and 18 compare equal.
        return (value / 1.000000000000000000000000000000000m).ToString(CultureInfo.InvariantCulture);
    }
}
