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

/// <summary>Unicode normalization through .NET's <see cref="string.Normalize(NormalizationForm)"/> (ICU on Linux).</summary>
internal static class UnicodeNormalization
{
    public static string Normalize(string text, UnicodeForm form) => text.Normalize(form switch
    {
        UnicodeForm.Nfc => NormalizationForm.FormC,
        UnicodeForm.Nfd => NormalizationForm.FormD,
        UnicodeForm.Nfkc => NormalizationForm.FormKC,
        _ => NormalizationForm.FormKD,
    });
}
