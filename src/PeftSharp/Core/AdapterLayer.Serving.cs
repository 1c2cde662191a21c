using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Core;

// Serving many adapters from one model: per-row routing (a mixed batch) and in-place weight swaps (hot-swap). Both are
// method-agnostic: routing calls the method's ApplyAdapter on each adapter's rows; a swap copies into AdapterTensors.
public abstract partial class AdapterLayer
{
    /// <summary>
    /// While set, each batch row runs its own adapter (or none) instead of the active set: PEFT's
    /// <c>_mixed_batch_forward</c>. Rows whose adapter this layer does not hold get the base output, as PEFT. Set by
    /// <see cref="PeftModel.UseAdapterPerRow"/>.
    /// </summary>
    public AdapterRouting? RowAdapters { get; internal set; }

    private string[]? _routedAdapter;

    private Tensor MixedBatchForward(Tensor x, AdapterRouting routing)
    {
        if (IsMerged)
        {
            throw new PeftException(
                $"per-row adapters cannot run while adapter(s) {string.Join(", ", _merged)} are merged into the base weight; call Unmerge() first");
        }
        using var scope = torch.NewDisposeScope();
        var result = Base.Module.call(x);
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
            where: $"a {PeftType} layer over {Base.Kind} {Base.InFeatures}→{Base.OutFeatures}");
        return result.MoveToOuterDisposeScope();
    }

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
