using System.Globalization;
using System.Text;

namespace PeftSharp.Tokenization.Unicode;

/// <summary>The four Unicode normalization forms (UAX #15) used by tokenizer normalizers.</summary>
internal enum UnicodeForm
{
    Nfc,
    Nfd,
    Nfkc,
    Nfkd,
}

/// <summary>
/// Unicode normalization (UAX #15) on our own tables. string.Normalize cannot be used: with InvariantGlobalization
/// (set for every PeftSharp project) .NET leaves non-ASCII text unnormalized, and elsewhere it depends on the OS ICU.
/// </summary>
internal static class UnicodeNormalization
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Lazy<Tables> s_tables = new(Tables.Build);

    public static string Normalize(string text, UnicodeForm form)
    {
        if (IsAscii(text))
        {
            return text;
        }
        var tables = s_tables.Value;
        bool compat = form is UnicodeForm.Nfkc or UnicodeForm.Nfkd;
        var codePoints = new List<int>(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            Decompose(rune.Value, compat, tables, codePoints);
        }
        SortCombiningMarks(codePoints, tables);
        if (form is UnicodeForm.Nfc or UnicodeForm.Nfkc)
        {
            Compose(codePoints, tables);
        }
        var sb = new StringBuilder(codePoints.Count);
        foreach (int cp in codePoints)
        {
            sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }

    /// <summary>Canonical combining class of a code point (0 for starters).</summary>
    public static int CombiningClass(int codePoint) =>
        s_tables.Value.CombiningClass.TryGetValue(codePoint, out byte c) ? c : 0;

    private static bool IsAscii(string text)
    {
        foreach (char c in text)
        {
            if (c >= 0x80)
            {
                return false;
            }
        }
        return true;
    }

    private static void Decompose(int cp, bool compat, Tables tables, List<int> output)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            int s = cp - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0)
            {
                output.Add(TBase + s % TCount);
            }
            return;
        }
        if (tables.Decompositions.TryGetValue(cp, out var entry) && (compat || !entry.Compatibility))
        {
            foreach (int part in entry.Mapping)
            {
                Decompose(part, compat, tables, output);
            }
            return;
        }
        output.Add(cp);
    }

    // Canonical ordering: a stable sort of every run of non-starters by combining class.
    private static void SortCombiningMarks(List<int> cps, Tables tables)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int ccc = Ccc(cps[i], tables);
            if (ccc == 0)
            {
                continue;
            }
            int j = i;
            while (j > 0 && Ccc(cps[j - 1], tables) > ccc)
            {
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                j--;
            }
        }
    }

    private static int Ccc(int cp, Tables tables) => tables.CombiningClass.TryGetValue(cp, out byte c) ? c : 0;

    // Canonical composition algorithm of UAX #15 §3.11 (blocked marks, Hangul LV/LVT).
    private static void Compose(List<int> cps, Tables tables)
    {
        if (cps.Count == 0)
        {
            return;
        }
        int starterIndex = Ccc(cps[0], tables) == 0 ? 0 : -1;
        int lastClass = starterIndex == 0 ? 0 : 256;
        int write = 1;
        for (int read = 1; read < cps.Count; read++)
        {
            int cp = cps[read];
            int ccc = Ccc(cp, tables);
            if (starterIndex >= 0 && (lastClass < ccc || lastClass == 0)
                && TryCompose(cps[starterIndex], cp, tables, out int composite))
            {
                cps[starterIndex] = composite;
                continue;
            }
            if (ccc == 0)
            {
                starterIndex = write;
            }
            lastClass = ccc;
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(int first, int second, Tables tables, out int composite)
    {
        if (first >= LBase && first < LBase + LCount && second >= VBase && second < VBase + VCount)
        {
            composite = SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
            return true;
        }
        if (first >= SBase && first < SBase + SCount && (first - SBase) % TCount == 0
            && second > TBase && second < TBase + TCount)
        {
            composite = first + (second - TBase);
            return true;
        }
        return tables.Compositions.TryGetValue(((long)first << 21) | (uint)second, out composite);
    }

    private sealed record Decomposition(bool Compatibility, int[] Mapping);

    private sealed class Tables
    {
        public Dictionary<int, byte> CombiningClass { get; } = [];

        public Dictionary<int, Decomposition> Decompositions { get; } = [];

        public Dictionary<long, int> Compositions { get; } = [];

        public static Tables Build()
        {
            var t = new Tables();
            foreach (var range in UnicodeNormalizationData.CombiningClasses.Split(';'))
            {
                int colon = range.IndexOf(':'), dash = range.IndexOf('-');
                int first = Hex(range[..dash]), last = Hex(range[(dash + 1)..colon]);
                byte ccc = (byte)Hex(range[(colon + 1)..]);
                for (int cp = first; cp <= last; cp++)
                {
                    t.CombiningClass[cp] = ccc;
                }
            }
            var excluded = UnicodeNormalizationData.CompositionExclusions.Split(';').Select(Hex).ToHashSet();
            foreach (var item in UnicodeNormalizationData.Decompositions.Split(';'))
            {
                int sep = item.IndexOfAny(['=', '<']);
                int cp = Hex(item[..sep]);
                bool compat = item[sep] == '<';
                int[] mapping = item[(sep + 1)..].Split(' ').Select(Hex).ToArray();
                t.Decompositions[cp] = new Decomposition(compat, mapping);
                // Primary composites: canonical pairs of a starter, minus the explicit exclusions.
                if (!compat && mapping.Length == 2 && !excluded.Contains(cp)
                    && !t.CombiningClass.ContainsKey(cp) && !t.CombiningClass.ContainsKey(mapping[0]))
                {
                    t.Compositions[((long)mapping[0] << 21) | (uint)mapping[1]] = cp;
                }
            }
            return t;
        }

        private static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }
}
