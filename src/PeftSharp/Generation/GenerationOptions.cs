namespace PeftSharp.Generation;

/// <summary>
/// Decoding settings, named and defaulted as transformers' <c>GenerationConfig</c> where it has the setting. Greedy
/// (argmax) unless <see cref="DoSample"/>; the repetition penalty applies in both modes, the warpers
/// (temperature → top-k → top-p → min-p, transformers' order) only when sampling.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Tokens to generate at most per row (<c>max_new_tokens</c>).</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Sample from the warped distribution instead of taking the argmax (<c>do_sample</c>).</summary>
    public bool DoSample { get; init; }

    /// <summary>Logits are divided by it before sampling (<c>temperature</c>, &gt; 0).</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens; 0 disables (<c>top_k</c>).</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches it; 1 disables (<c>top_p</c>).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Drop tokens less likely than <c>min_p × p(most likely)</c>; 0 disables (<c>min_p</c>).</summary>
    public double MinP { get; init; }

    /// <summary>
    /// Divides positive (multiplies negative) logits of tokens already in the row, prompt included, by it
    /// (<c>repetition_penalty</c>, CTRL paper); 1 disables. Left-padding tokens do not count.
    /// </summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Seed of the sampling generator; null draws one from the system.</summary>
    public long? Seed { get; init; }

    /// <summary>A row stops after emitting any of these (<c>eos_token_id</c>); the stop token is part of its output.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>Id used to left-pad shorter prompts and to fill finished rows (<c>pad_token_id</c>); masked out either way.</summary>
    public int PadTokenId { get; init; }

    /// <summary>Throws a <see cref="PeftException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 0)
        {
            throw new PeftException($"max_new_tokens must be >= 0, got {MaxNewTokens}");
        }
        if (!(Temperature > 0))
        {
            throw new PeftException($"temperature must be > 0, got {Temperature} (use DoSample = false for greedy decoding)");
        }
        if (TopK < 0)
        {
            throw new PeftException($"top_k must be >= 0, got {TopK}");
        }
        if (!(TopP > 0 && TopP <= 1))
        {
            throw new PeftException($"top_p must be in (0, 1], got {TopP}");
        }
        if (!(MinP >= 0 && MinP <= 1))
        {
            throw new PeftException($"min_p must be in [0, 1], got {MinP}");
        }
        if (!(RepetitionPenalty > 0))
        {
            throw new PeftException($"repetition_penalty must be > 0, got {RepetitionPenalty}");
        }
    }
}
