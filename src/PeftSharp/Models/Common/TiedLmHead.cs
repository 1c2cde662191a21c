using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Models.Common;

/// <summary>
/// An output projection that shares the input embedding's weight (<c>tie_word_embeddings</c>): <c>y = x · Eᵀ</c>,
/// <c>E</c> the <c>[vocab, hidden]</c> weight of the embedding given. It owns no parameter, so
/// <c>named_parameters()</c> lists the weight once, under the embedding's name, as the checkpoint stores it. The weight
/// is read at every call, so it follows the embedding through <c>.to()</c>, loading, and an adapter wrapping the
/// embedding (PEFT keeps the tie to the base layer's weight).
/// </summary>
public sealed class TiedLmHead : nn.Module<Tensor, Tensor>
{
    private readonly Embedding _embedding;

    public TiedLmHead(Embedding embedding) : base("TiedLmHead")
    {
        _embedding = embedding;
        RegisterComponents();
    }

    /// <summary>The shared weight <c>[vocab, hidden]</c>.</summary>
    public Tensor Weight => _embedding.weight!;

    protected override void RegisterComponents()
    {
        // The embedding is registered by its owner; registering it here too would list its weight twice.
    }

    public override Tensor forward(Tensor x)
    {
        return nn.functional.linear(x, Weight);
    }
}
