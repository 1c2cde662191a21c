using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Common;

/// <summary>Sequence pooling as transformers' classification heads and sentence-transformers do it.</summary>
public static class Pooling
{
    /// <summary>
    /// sentence-transformers' mean pooling: <c>Σ_t h[b,t]·mask[b,t] / max(Σ_t mask[b,t], 1e-9)</c>, <c>[B, hidden]</c>.
    /// Without a mask every position counts.
    /// </summary>
    public static Tensor Mean(Tensor lastHiddenState, Tensor? attentionMask)
    {
        using var scope = torch.NewDisposeScope();
        if (attentionMask is null)
        {
            return lastHiddenState.mean([1]).MoveToOuterDisposeScope();
        }
        var mask = attentionMask.to(lastHiddenState.device).to_type(lastHiddenState.dtype).unsqueeze(-1);
        var summed = (lastHiddenState * mask).sum(1);
        var counts = mask.sum(1).clamp_min(1e-9);
        return (summed / counts).MoveToOuterDisposeScope();
    }

    /// <summary>L2-normalises the last dimension (<c>torch.nn.functional.normalize(p=2, eps=1e-12)</c>).</summary>
    public static Tensor L2Normalize(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var norm = x.norm(-1, keepdim: true).clamp_min(1e-12);
        return (x / norm).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Index of the token a decoder classification head reads, per row: transformers'
    /// <c>(input_ids == pad_token_id).argmax(-1) - 1</c> modulo T, i.e. the position before the first pad token, or
    /// the last position when a row has none (left padding included). Without a pad token only batch size 1 is allowed
    /// (transformers raises the same). Returns int64 <c>[B]</c>.
    /// </summary>
    public static Tensor LastTokenIndex(Tensor inputIds, int? padTokenId, string modelName)
    {
        using var scope = torch.NewDisposeScope();
        var batch = inputIds.shape[0];
        var length = inputIds.shape[1];
        if (padTokenId is null)
        {
            if (batch != 1)
            {
                throw new PeftException(
                    $"{modelName}: cannot pool a batch of {batch} rows without 'pad_token_id' in config.json (transformers refuses too)");
            }
            return torch.full(1, length - 1, dtype: ScalarType.Int64, device: inputIds.device).MoveToOuterDisposeScope();
        }
        var firstPad = inputIds.eq(padTokenId.Value).to_type(ScalarType.Int32).argmax(-1) - 1;
        return firstPad.remainder(length).to_type(ScalarType.Int64).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The hidden state <c>[B, hidden]</c> of <paramref name="lastHiddenState"/> <c>[B, T, hidden]</c> at each row's
    /// <see cref="LastTokenIndex"/>: what a decoder classification head (transformers' <c>…ForSequenceClassification</c>) scores.
    /// </summary>
    public static Tensor LastToken(Tensor lastHiddenState, Tensor inputIds, int? padTokenId, string modelName)
    {
        using var scope = torch.NewDisposeScope();
        var index = LastTokenIndex(inputIds, padTokenId, modelName).view(-1, 1, 1);
        var rows = lastHiddenState.gather(1, index.expand(lastHiddenState.shape[0], 1, lastHiddenState.shape[2]));
        return rows.squeeze(1).MoveToOuterDisposeScope();
    }
}
