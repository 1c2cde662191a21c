using PeftSharp.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Models.Gpt2;

/// <summary>
/// transformers' <c>GPT2Model</c>: <c>wte</c> + <c>wpe</c> (absolute positions, <c>n_positions</c> of them), blocks
/// <c>h</c>, final <c>ln_f</c>. Token type ids, when given, are embedded with <c>wte</c> and added (as transformers).
/// Returns the hidden state after <c>ln_f</c>, <c>[B, T, n_embd]</c>.
/// </summary>
public sealed class Gpt2Model : nn.Module<ModelInput, Tensor>, ICheckpointedStack
{
    public nn.Module<Tensor, Tensor> wte;
    public nn.Module<Tensor, Tensor> wpe;
    public ModuleList<Gpt2Block> h;
    public nn.Module<Tensor, Tensor> ln_f;

    private readonly Unregistered<Embedding> _wte;
    private readonly Gpt2Config _config;
    private readonly string _architecture;

    public Gpt2Model(Gpt2Config c, ModelConfig source, string architecture, Device? device, ScalarType dtype) : base("GPT2Model")
    {
        _config = c;
        _architecture = architecture;
        var embedding = nn.Embedding(c.VocabSize, c.HiddenSize, device: device, dtype: dtype);
        _wte = new Unregistered<Embedding>(embedding);
        wte = embedding;
        wpe = nn.Embedding(c.MaxPositions, c.HiddenSize, device: device, dtype: dtype);
        h = new ModuleList<Gpt2Block>(
            Enumerable.Range(0, c.NumLayers).Select(i => new Gpt2Block(c, source, i, device, dtype)).ToArray());
        ln_f = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device, dtype: dtype);
        RegisterComponents();
        InitConv1D(source.GetDouble("initializer_range", 0.02));
    }

    /// <summary>Recompute each block in the backward instead of keeping its activations (see <see cref="Checkpointing"/>).</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>The token embedding as built, which a tied <c>lm_head</c> shares.</summary>
    internal Embedding TokenEmbedding => _wte.Value;

    public override Tensor forward(ModelInput input)
    {
        using var scope = torch.NewDisposeScope();
        var ids = input.InputIds;
        var batch = ids.shape[0];
        var length = ids.shape[1];
        long past = 0;
        if (input.Cache is KvCache cache)
        {
            if (cache.NumLayers != h.Count || (cache.BatchSize is long rows && rows != batch))
            {
                throw new PeftException(
                    $"{_architecture}: the KV cache ({cache.NumLayers} layers, {cache.BatchSize} rows) does not fit the model ({h.Count} layers) and input ({batch} rows)");
            }
            past = cache.Length;
        }
        if (input.PositionIds is null && past + length > _config.MaxPositions)
        {
            throw new PeftException($"{_architecture}: {past + length} positions exceed n_positions {_config.MaxPositions}");
        }
        var positions = input.PositionIds ?? AttentionMasks.DefaultPositionIds(batch, length, past, ids.device);
        var hidden = wte.call(ids) + wpe.call(positions);
        if (input.TokenTypeIds is not null)
        {
            hidden = hidden + wte.call(input.TokenTypeIds);
        }
        hidden = nn.functional.dropout(hidden, _config.EmbdDropout, training);
        var mask = AttentionMasks.Build(input.AttentionMask, batch, length, past, causal: true, hidden.dtype, hidden.device);
        var ctx = new Gpt2Context(mask, input.Cache);
        var checkpoint = Checkpointing.IsActive(GradientCheckpointing, training, input.Cache);
        foreach (var block in h)
        {
            hidden = checkpoint
                ? Checkpointing.Run(block, xs => block.call(xs[0]!, new Gpt2Context(xs[1], null)), hidden, mask)
                : block.call(hidden, ctx);
        }
        return ln_f.call(hidden).MoveToOuterDisposeScope();
    }

    private void InitConv1D(double std)
    {
        // Conv1D starts uninitialised; transformers draws its weights from N(0, initializer_range), biases zero.
        using var _ = torch.no_grad();
        foreach (var (_, module) in named_modules())
        {
            if (module is Conv1D conv)
            {
                nn.init.normal_(conv.weight, 0, std);
            }
        }
    }
}
