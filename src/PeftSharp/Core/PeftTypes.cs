namespace PeftSharp.Core;

/// <summary>Every <c>peft_type</c> Hugging Face PEFT (0.18–0.20) defines, including methods PeftSharp does not implement.</summary>
public static class PeftTypes
{
    public static readonly IReadOnlySet<string> Known = new HashSet<string>(StringComparer.Ordinal)
    {
        "PROMPT_TUNING", "MULTITASK_PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "LORA", "ADALORA", "BOFT", "ADAPTION_PROMPT",
        "IA3", "LOHA", "LOKR", "OFT", "POLY", "LN_TUNING", "VERA", "FOURIERFT", "XLORA", "HRA", "VBLORA", "CPT", "BONE", "MISS",
        "RANDLORA", "TRAINABLE_TOKENS", "SHIRA", "C3A", "ROAD", "WAVEFT", "DELORA", "OSF", "GRALORA",
    };
}
