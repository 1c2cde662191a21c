using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Common;

/// <summary>
/// Additive attention masks for <c>scaled_dot_product_attention</c>, built as transformers builds them for its eager
/// path: 0 where a query may attend a key, the dtype's most negative finite value (<c>finfo.min</c>) elsewhere. A
/// finite minimum (not -inf, not a boolean mask) keeps a query whose keys are all masked (a left-padding position)
/// finite: its scores are all equal and the softmax is uniform instead of NaN.
/// </summary>
public static class AttentionMasks
{
    /// <summary>
    /// The mask <c>[B, 1, T, past + T]</c> for <paramref name="queryLength"/> new positions after
    /// <paramref name="pastLength"/> cached ones, or null when nothing is masked (non-causal, no padding).
    /// </summary>
    /// <param name="attentionMask">1/0 per key <c>[B, past + T]</c> (or <c>[B, T]</c> when nothing is cached), or null.</param>
    /// <param name="batch">Batch size B.</param>
    /// <param name="queryLength">New positions T.</param>
    /// <param name="pastLength">Cached positions.</param>
    /// <param name="causal">Key j is visible to query i only when <c>j ≤ past + i</c>.</param>
    /// <param name="dtype">Dtype of the attention scores.</param>
    /// <param name="device">Device of the scores.</param>
    /// <param name="slidingWindow">
    /// With <paramref name="causal"/>, key j is visible to query i only when also <c>j &gt; past + i − window</c>: the
    /// last <c>window</c> positions, the query's own included, counted in cache positions (padding included), as
    /// transformers' sliding-window mask counts them.
    /// </param>
    public static Tensor? Build(
        Tensor? attentionMask, long batch, long queryLength, long pastLength, bool causal, ScalarType dtype, Device device, int? slidingWindow = null)
    {
        if (slidingWindow is int w && (w < 1 || !causal))
        {
            throw new PeftException($"a sliding window needs a causal mask and a window of 1 position or more, got {w}");
        }
        using var scope = torch.NewDisposeScope();
        var keyLength = pastLength + queryLength;
        Tensor? allowed = null;
        if (attentionMask is not null)
        {
            if (attentionMask.dim() != 2 || attentionMask.shape[0] != batch || attentionMask.shape[1] != keyLength)
            {
                throw new PeftException(
                    $"attention_mask is [{string.Join(", ", attentionMask.shape)}]; expected [{batch}, {keyLength}] "
                    + $"({pastLength} cached + {queryLength} new positions)");
            }
            if (!causal && attentionMask.ne(0).all().item<bool>())
            {
                return null;
            }
            allowed = attentionMask.to(device).ne(0).view(batch, 1, 1, keyLength);
        }
        else if (!causal)
        {
            return null;
        }
        if (causal)
        {
            var q = torch.arange(pastLength, keyLength, dtype: ScalarType.Int64, device: device).view(-1, 1);
            var k = torch.arange(0, keyLength, dtype: ScalarType.Int64, device: device).view(1, -1);
            var visible = k.le(q);
            if (slidingWindow is int window)
            {
                visible = visible.logical_and(k.gt(q - window));
            }
            var causalAllowed = visible.view(1, 1, queryLength, keyLength);
            allowed = allowed is null ? causalAllowed : allowed.logical_and(causalAllowed);
        }
        var min = torch.finfo(dtype).min;
        var zero = torch.zeros(1, dtype: dtype, device: device);
        var masked = torch.full(1, min, dtype: dtype, device: device);
        var additive = torch.where(allowed!, zero, masked).expand(batch, 1, queryLength, keyLength).contiguous();
        return additive.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Generation-style position ids from a left-padded mask <c>[B, S]</c>: <c>cumsum(mask) - 1</c>, with padding
    /// positions set to 1 (transformers' <c>prepare_inputs_for_generation</c>), int64 <c>[B, S]</c>. Slice the last
    /// T columns for a step that appends T tokens to a cache.
    /// </summary>
    public static Tensor PositionIdsFromMask(Tensor attentionMask)
    {
        using var scope = torch.NewDisposeScope();
        var mask = attentionMask.to_type(ScalarType.Int64);
        var positions = mask.cumsum(-1) - 1;
        positions = positions.masked_fill(mask.eq(0), 1);
        return positions.MoveToOuterDisposeScope();
    }

    /// <summary>Default position ids: <c>past .. past+T-1</c> in every row (left padding included), int64 <c>[B, T]</c>.</summary>
    public static Tensor DefaultPositionIds(long batch, long length, long past, Device device) =>
        torch.arange(past, past + length, dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(batch, length);
}
