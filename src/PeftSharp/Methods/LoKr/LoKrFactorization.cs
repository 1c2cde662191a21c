namespace PeftSharp.Methods.LoKr;

/// <summary>
/// How LoKr splits a dimension into the two Kronecker sides, with the exact rules of PEFT's (and LyCORIS')
/// <c>factorization(dimension, factor)</c>; the factor shapes, and so the saved tensors, depend on it.
/// </summary>
public static class LoKrFactorization
{
    /// <summary>
    /// Splits <paramref name="dimension"/> into <c>(m, n)</c> with <c>m · n = dimension</c>.
    /// A positive <paramref name="factor"/> that divides the dimension gives <c>(factor, dimension / factor)</c> as is
    /// (m may exceed n). Otherwise divisors m are tried upwards from 2 while m stays below the cofactor and does not exceed
    /// the factor (-1: no limit), keeping the last pair; the result is ordered so that m ≤ n.
    /// Examples (PEFT's docstring): 256 → (16, 16), 128 → (8, 16), 127 → (1, 127), 128 with factor 4 → (4, 32).
    /// </summary>
    public static (long M, long N) Split(long dimension, int factor = -1)
    {
        if (dimension <= 0)
        {
            throw new PeftException($"LoKr cannot factorise a dimension of {dimension}");
        }
        if (factor > 0 && dimension % factor == 0)
        {
            return (factor, dimension / factor);
        }
        long limit = factor == -1 ? dimension : factor;
        long m = 1, n = dimension;
        // PEFT also compares m + n with the sum of the first pair, which never changes and can never stop the loop.
        while (m < n)
        {
            var next = m + 1;
            while (dimension % next != 0)
            {
                next++;
            }
            if (next > limit)
            {
                break;
            }
            (m, n) = (next, dimension / next);
        }
        return m > n ? (n, m) : (m, n);
    }
}
