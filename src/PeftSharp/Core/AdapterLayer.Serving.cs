using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Core;

// Serving many adapters from one model: per-row routing (a mixed batch) and in-place weight swaps (hot-swap). Both are
// method-agnostic: routing calls the method's batched ApplyRoutedAdapters if it has one, else its ApplyAdapter on each
// adapter's rows; a swap copies into AdapterTensors.
public abstract partial class AdapterLayer
{
    /// <summary>
    /// While set, each batch row runs its own adapter (or none) instead of the active set: PEFT's
    /// <c>_mixed_batch_forward</c>. Rows whose adapter this layer does not hold get the base output, as PEFT. Set by
    /// <see cref="PeftModel.UseAdapterPerRow"/>.
    /// </summary>
    public AdapterRouting? RowAdapters { get; internal set; }

    private string[]? _routedAdapter;
    private string? _routingSite;

    /// <summary>Mixed-batch forwards this layer computed with <see cref="ApplyRoutedAdapters"/> (the batched path) rather than per adapter group.</summary>
    internal long BatchedRoutedForwards { get; private set; }

    private Tensor MixedBatchForward(Tensor x, AdapterRouting routing)
    {
        if (IsMerged)
        {
            throw new PeftException(
                $"per-row adapters cannot run while adapter(s) {string.Join(", ", _merged)} are merged into the base weight; call Unmerge() first");
        }
        var where = _routingSite ??= $"a {PeftType} layer over {Base.Kind} {Base.InFeatures}→{Base.OutFeatures}";
        routing.CheckRows(x, where);
        using var scope = torch.NewDisposeScope();
        var result = Base.Module.call(x);
        // One group is one call on the whole batch (or none) in Scatter; the batched path pays off from two groups on.
        if (routing.Groups.Count > 1)
        {
            var held = new List<string>(routing.Groups.Count);
            foreach (var group in routing.Groups)
            {
                if (group.Adapter != AdapterRouting.BaseName && _adapters.Contains(group.Adapter))
                {
                    held.Add(group.Adapter);
                }
            }
            if (held.Count == 0)
            {
                return result.MoveToOuterDisposeScope();
            }
            if (ApplyRoutedAdapters(x, result, routing, held) is { } batched)
            {
                BatchedRoutedForwards++;
                return batched.MoveToOuterDisposeScope();
            }
        }
        result = routing.Scatter(
            x,
            result,
            skip: name => name == AdapterRouting.BaseName || !_adapters.Contains(name),
            apply: (name, rows, rowResult) =>
            {
                // Rows run their adapter alone: a method whose forward depends on the active set (MiSS/Bone bat compounds
                // the adapters before it) sees just this one, as it would with SetActiveAdapters(name).
                _routedAdapter = [name];
                try
                {
                    return ApplyAdapter(name, rows, rowResult);
                }
                finally
                {
                    _routedAdapter = null;
                }
            },
            where: where);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Applies every routed adapter to its own rows in one batched computation, with a number of tensor calls that does not
    /// grow with the number of adapters (punica/S-LoRA's gathered per-row factors for LoRA): returns <paramref name="result"/>
    /// (the base output, <c>[batch, …]</c>) plus, on each row, the output of that row's adapter run alone. Rows of
    /// <see cref="AdapterRouting.BaseName"/> or of an adapter not in <paramref name="adapters"/> keep their base output.
    /// <paramref name="adapters"/> are the distinct routed adapters this layer holds, in order of first appearance. Returns
    /// null, the default, when the method or this batch has no batched path; each adapter group then runs
    /// <see cref="ApplyAdapter"/> on its rows.
    /// </summary>
    protected virtual Tensor? ApplyRoutedAdapters(Tensor x, Tensor result, AdapterRouting routing, IReadOnlyList<string> adapters) => null;

    /// <summary>
    /// adapter_config.json keys that may differ between an adapter and the one hot-swapped into its place; the layer takes
    /// their new values in <see cref="SwapConfig"/>. Default: none (only the weights change). LoRA: <c>r</c>,
    /// <c>lora_alpha</c>, <c>rank_pattern</c>, <c>alpha_pattern</c>, <c>init_lora_weights</c>.
    /// </summary>
    public virtual IReadOnlyCollection<string> HotSwappableConfigKeys => [];

    /// <summary>
    /// The axis of one adapter tensor (by its <see cref="AdapterTensors"/> key) along which a smaller rank is zero-padded
    /// when hot-swapped into a larger allocation (LoRA: <c>lora_A.weight</c> 0, <c>lora_B.weight</c> 1); null when the
    /// shapes must match exactly.
    /// </summary>
    protected internal virtual int? RankAxis(string adapterName, string key) => null;

    /// <summary>Takes the per-module config of an adapter hot-swapped in (after its tensors were copied). Default: nothing to update.</summary>
    protected internal virtual void SwapConfig(string adapterName, AdapterConfig moduleConfig)
    {
    }

    /// <summary>
    /// Reallocates the adapter's rank-sized tensors to <paramref name="targetRank"/>, the old values in the leading slice and
    /// zeros after them (the output does not change): PEFT's <c>prepare_model_for_compiled_hotswap(target_rank=…)</c>.
    /// Default: the method has no rank to pad.
    /// </summary>
    protected internal virtual void PadRank(string adapterName, int targetRank) =>
        throw new PeftException($"{PeftType} adapters cannot be rank-padded for hot-swapping");

    /// <summary>True when the adapter's tensors are larger than its config's rank (padded for hot-swapping).</summary>
    public virtual bool IsRankPadded(string adapterName) => false;
}
