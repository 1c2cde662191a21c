using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>
/// An adapter layer whose adapters also work at any rank b below the rank they were built with (DyLoRA's nested ranks):
/// outside training the adapter runs at its evaluation rank. Tools (<c>peft eval --rank</c>) set it through this interface
/// without knowing the method.
/// </summary>
public interface IRankTruncatable
{
    /// <summary>The rank the adapter was built with (the largest allowed evaluation rank).</summary>
    int MaxRank(string adapterName);

    /// <summary>The rank used outside training; null means <see cref="MaxRank"/>.</summary>
    int? EvaluationRank(string adapterName);

    /// <summary>Sets the evaluation rank (1 ≤ rank ≤ <see cref="MaxRank"/>, or null for the full rank).</summary>
    void SetEvaluationRank(string adapterName, int? rank);
}

/// <summary>Applies an evaluation rank to every rank-truncatable adapter of a model.</summary>
public static class RankTruncation
{
    /// <summary>
    /// Sets <paramref name="rank"/> on every adapter of every <see cref="IRankTruncatable"/> layer in <paramref name="model"/>
    /// and returns the number of layers changed. Throws when no layer supports it or the rank exceeds one's maximum
    /// (nothing is changed then).
    /// </summary>
    public static int SetEvaluationRank(nn.Module model, int? rank)
    {
        var layers = model.modules().OfType<AdapterLayer>().Where(l => l is IRankTruncatable).ToList();
        if (layers.Count == 0)
        {
            throw new PeftException("no adapter of this model can be evaluated with another rank (a rank-nested method such as DyLoRA is needed)");
        }
        foreach (var layer in layers)
        {
            foreach (var name in layer.AdapterNames)
            {
                var max = ((IRankTruncatable)layer).MaxRank(name);
                if (rank is int b && (b < 1 || b > max))
                {
                    throw new PeftException($"rank {b} is outside 1..{max} for adapter '{name}' ({layer.PeftType})");
                }
            }
        }
        foreach (var layer in layers)
        {
            foreach (var name in layer.AdapterNames)
            {
                ((IRankTruncatable)layer).SetEvaluationRank(name, rank);
            }
        }
        return layers.Count;
    }
}
