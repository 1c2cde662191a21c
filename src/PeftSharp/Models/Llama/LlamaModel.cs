using PeftSharp.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Models.Llama;

/// <summary>
/// transformers' <c>LlamaModel</c> (and <c>Qwen2Model</c>, <c>MistralModel</c>): <c>embed_tokens</c>, <c>layers</c>,
/// final <c>norm</c>. Returns the normalised hidden state <c>[B, T, hidden]</c>. Attention is causal plus the padding
/// mask (plus the sliding window on the layers that have one); positions default to <c>past .. past+T-1</c> in every row.
/// </summary>
public sealed class LlamaModel : nn.Module<ModelInput, Tensor>, ICheckpointedStack
{
    public nn.Module<Tensor, Tensor> embed_tokens;
    public ModuleList<LlamaDecoderLayer> layers;
    public nn.Module<Tensor, Tensor> norm;

    private readonly Unregistered<Embedding> _embedding;
    private readonly RotaryEmbedding _rotary;
    private readonly LlamaConfig _config;
    private readonly string _architecture;

    public LlamaModel(LlamaConfig c, ModelConfig source, string architecture, Device? device, ScalarType dtype) : base("LlamaModel")
    {
        _config = c;
        _architecture = architecture;
        long? padding = c.PadTokenId is int pad && pad >= 0 && pad < c.VocabSize ? pad : null;
        var embedding = nn.Embedding(c.VocabSize, c.HiddenSize, padding_idx: padding, device: device, dtype: dtype);
        _embedding = new Unregistered<Embedding>(embedding);
        embed_tokens = embedding;
        layers = new ModuleList<LlamaDecoderLayer>(
            Enumerable.Range(0, c.NumHiddenLayers).Select(i => new LlamaDecoderLayer(c, source, i, device, dtype)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        _rotary = new RotaryEmbedding(c.HeadDim, c.RopeTheta, c.RopeScaling, c.MaxPositionEmbeddings);
        RegisterComponents();
    }

    /// <summary>Recompute each decoder layer in the backward instead of keeping its activations (see <see cref="Checkpointing"/>).</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>The token embedding as built (the base layer a tied <c>lm_head</c> shares), even after an adapter wraps <see cref="embed_tokens"/>.</summary>
    internal Embedding Embedding => _embedding.Value;

    public override Tensor forward(ModelInput input)
    {
        using var scope = torch.NewDisposeScope();
        var ids = input.InputIds;
        InputChecks.Ids(_architecture, ids, _config.VocabSize, "input_ids", "vocab_size");
        if (input.PositionIds is not null)
        {
            InputChecks.Positions(_architecture, input.PositionIds, ids);
        }
        var batch = ids.shape[0];
        var length = ids.shape[1];
        var past = CheckCache(input.Cache, batch);
        var positions = input.PositionIds ?? AttentionMasks.DefaultPositionIds(batch, length, past, ids.device);
        var h = embed_tokens.call(ids);
        var (cos, sin) = _rotary.CosSin(positions, h.dtype);
        var mask = AttentionMasks.Build(input.AttentionMask, batch, length, past, causal: true, h.dtype, h.device);
        // Layers with a sliding window get their own mask once the sequence (cache included) is longer than the window;
        // the cache keeps every position, the mask hides the ones behind the window.
        var windowMask = _config.SlidingWindow is int window && past + length > window
            ? AttentionMasks.Build(input.AttentionMask, batch, length, past, causal: true, h.dtype, h.device, window)
            : mask;
        var ctx = new DecoderContext(cos, sin, mask, input.Cache);
        var windowCtx = ctx with { Mask = windowMask };
        var checkpoint = Checkpointing.IsActive(GradientCheckpointing, training, input.Cache);
        for (var i = 0; i < layers.Count; i++)
        {
            var layer = layers[i];
            var sliding = _config.SlidingLayers[i];
            h = checkpoint
                ? Checkpointing.Run(layer, xs => layer.call(xs[0]!, new DecoderContext(xs[1]!, xs[2]!, xs[3], null)), h, cos, sin, sliding ? windowMask : mask)
                : layer.call(h, sliding ? windowCtx : ctx);
        }
        return norm.call(h).MoveToOuterDisposeScope();
    }

    private long CheckCache(KvCache? cache, long batch)
    {
        if (cache is null)
        {
            return 0;
        }
        if (cache.NumLayers != layers.Count)
        {
            throw new PeftException($"{_architecture}: the KV cache has {cache.NumLayers} layers, the model {layers.Count}");
        }
        if (cache.BatchSize is long cached && cached != batch)
        {
            throw new PeftException($"{_architecture}: the KV cache holds {cached} rows, the input has {batch}");
        }
        return cache.Length;
    }
}
