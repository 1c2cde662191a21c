using static TorchSharp.torch;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// A variant that changes how one LoRA adapter computes its output and merges (PEFT's <c>LoraVariant</c>; DoRA is one).
/// The variant owns its extra state (kept as children of the layer via <see cref="LoraLayer.Child{T}"/>); the layer
/// calls these hooks instead of its plain LoRA path for adapters created with the variant.
/// </summary>
public interface ILoraVariant
{
    /// <summary>Creates the variant's parameters after A and B exist (e.g. DoRA's magnitude from the weight norm).</summary>
    void Init(LoraLayer layer, string adapterName);

    /// <summary>Returns the layer output with this adapter applied, given the base output <paramref name="result"/>.</summary>
    Tensor Forward(LoraLayer layer, string adapterName, Tensor x, Tensor result);

    /// <summary>The effective <c>W' − W</c> in <c>[out, in]</c> layout (Embedding <c>[dim, vocab]</c>).</summary>
    Tensor EffectiveDelta(LoraLayer layer, string adapterName);

    void Merge(LoraLayer layer, string adapterName);

    void Unmerge(LoraLayer layer, string adapterName);

    /// <summary>Extra tensors saved with the adapter, under PEFT's names relative to the module.</summary>
    IReadOnlyDictionary<string, Tensor> Tensors(LoraLayer layer, string adapterName);

    void Remove(LoraLayer layer, string adapterName);
}
