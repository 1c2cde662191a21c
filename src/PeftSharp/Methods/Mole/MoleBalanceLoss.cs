using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Mole;

/// <summary>
/// LLaVA-MoLE's load-balancing loss (official <c>model.py</c>): for each sample, pool the real tokens (attention mask 1)
/// of every MLP, take P_k = mean router probability and f_k = fraction of tokens whose top-1 expert is k (no gradient),
/// and sum P_k·f_k over the K experts (no factor K: perfectly balanced routing gives 1/K, all tokens on one expert
/// with probability p gives p). The batch mean is multiplied by <c>moe_balance_w</c>.
/// </summary>
public static class MoleBalanceLoss
{
    /// <summary>
    /// The unweighted loss. <paramref name="probabilities"/>: one tensor per MLP, <c>[B, T, K]</c> (or <c>[N, K]</c>: one
    /// sample); <paramref name="attentionMask"/> <c>[B, T]</c> (1 = real token) or null (every token is real). A sample
    /// without real tokens contributes 0 (it still counts in the batch mean, as in the official code).
    /// </summary>
    public static Tensor Compute(IReadOnlyList<Tensor> probabilities, Tensor? attentionMask)
    {
        if (probabilities.Count == 0)
        {
            throw new PeftException("MoLE balancing loss: no router probabilities were recorded");
        }
        using var scope = torch.NewDisposeScope();
        var k = probabilities[0].shape[^1];
        // [L, B, T, K] with B = 1 for token-only shapes.
        var stacked = torch.stack(probabilities.Select(p => p.dim() == 2 ? p.unsqueeze(0) : p.reshape(p.shape[0], -1, k)).ToArray()).to(ScalarType.Float32);
        var (layers, rows, tokens) = (stacked.shape[0], stacked.shape[1], stacked.shape[2]);
        Tensor mask;
        if (attentionMask is null)
        {
            mask = torch.ones([rows, tokens], dtype: ScalarType.Float32, device: stacked.device);
        }
        else
        {
            if (attentionMask.shape[0] != rows || attentionMask.numel() != rows * tokens)
            {
                throw new PeftException(
                    $"MoLE balancing loss: the attention mask is [{string.Join(", ", attentionMask.shape)}] but the routing covers {rows} × {tokens} tokens");
            }
            mask = attentionMask.reshape(rows, tokens).to(ScalarType.Float32).to(stacked.device);
        }
        var m = mask.unsqueeze(0).unsqueeze(-1);                                   // [1, B, T, 1]
        var count = (mask.sum(1) * layers).clamp_min(1).unsqueeze(-1);             // [B, 1]: real tokens × layers
        var chosen = nn.functional.one_hot(stacked.argmax(-1), k).to(ScalarType.Float32).detach();
        var meanP = (stacked * m).sum([0, 2]) / count;                            // [B, K]
        var fraction = (chosen * m).sum([0, 2]) / count;                          // [B, K]
        return (meanP * fraction).sum(-1).mean().MoveToOuterDisposeScope();
    }
}

/// <summary>Adds <c>moe_balance_w</c> × <see cref="MoleBalanceLoss"/> to each training micro-batch's loss.</summary>
internal sealed class MoleBalanceHook(MolePlan plan, double weight) : IAuxiliaryLoss
{
    public void BeginForward(Batch batch) => plan.Recorder.Start();

    public Tensor? EndForward(Batch batch)
    {
        plan.Recorder.Stop();
        try
        {
            if (plan.Recorder.Recorded.Count == 0)
            {
                return null;
            }
            return MoleBalanceLoss.Compute(plan.Recorder.Recorded, batch.AttentionMask) * weight;
        }
        finally
        {
            plan.Recorder.Clear();
        }
    }
}
