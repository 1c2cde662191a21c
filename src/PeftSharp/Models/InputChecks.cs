using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models;

/// <summary>Checks on model inputs, run before any embedding lookup so a bad id gives a message, not a native crash.</summary>
internal static class InputChecks
{
    /// <summary>
    /// <paramref name="ids"/> must be an integer <c>[B, T]</c> tensor (<paramref name="shapeLike"/>'s shape when given)
    /// with every value in <c>[0, <paramref name="limit"/>)</c>; <paramref name="limitName"/> names the config key.
    /// </summary>
    public static void Ids(string model, Tensor ids, long limit, string what, string limitName, Tensor? shapeLike = null)
    {
        if (ids.dim() != 2 || ids.numel() == 0)
        {
            throw new PeftException($"{model}: {what} must be a non-empty [batch, seq] tensor, got [{Shape(ids)}]");
        }
        if (shapeLike is not null && !(ids.shape[1] == shapeLike.shape[1] && (ids.shape[0] == shapeLike.shape[0] || ids.shape[0] == 1)))
        {
            throw new PeftException($"{model}: {what} is [{Shape(ids)}]; expected [{Shape(shapeLike)}] like input_ids");
        }
        if (ids.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Byte or ScalarType.Int8))
        {
            throw new PeftException($"{model}: {what} must be an integer tensor (int64), got {ids.dtype}");
        }
        var min = ids.min().item<long>();
        var max = ids.max().item<long>();
        if (min < 0 || max >= limit)
        {
            throw new PeftException($"{model}: {what} holds {(min < 0 ? min : max)}, outside [0, {limit}) ({limitName})");
        }
    }

    /// <summary>Position ids of a rotary model: integer, shaped like input_ids, non-negative.</summary>
    public static void Positions(string model, Tensor positions, Tensor inputIds) =>
        Ids(model, positions, long.MaxValue, "position_ids", "positions must be non-negative", inputIds);

    private static string Shape(Tensor t) => string.Join(", ", t.shape);
}
