using PeftSharp.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Models.Bert;

/// <summary>
/// transformers' <c>BertEmbeddings</c>: <c>word_embeddings</c> + <c>position_embeddings</c> (absolute) +
/// <c>token_type_embeddings</c>, then <c>LayerNorm</c> and dropout.
/// </summary>
public sealed class BertEmbeddings : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> word_embeddings;
    public nn.Module<Tensor, Tensor> position_embeddings;
    public nn.Module<Tensor, Tensor> token_type_embeddings;
    public nn.Module<Tensor, Tensor> LayerNorm;

    private readonly double _dropout;

    public BertEmbeddings(BertConfig c, Device? device, ScalarType dtype) : base("BertEmbeddings")
    {
        long? padding = c.PadTokenId is int pad && pad >= 0 && pad < c.VocabSize ? pad : null;
        word_embeddings = nn.Embedding(c.VocabSize, c.HiddenSize, padding_idx: padding, device: device, dtype: dtype);
        position_embeddings = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize, device: device, dtype: dtype);
        token_type_embeddings = nn.Embedding(c.TypeVocabSize, c.HiddenSize, device: device, dtype: dtype);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device, dtype: dtype);
        _dropout = c.HiddenDropout;
        RegisterComponents();
    }

    /// <summary>Embeds ids, token types and positions, all <c>[B, T]</c>.</summary>
    public override Tensor forward(Tensor inputIds, Tensor tokenTypeIds, Tensor positionIds)
    {
        using var scope = torch.NewDisposeScope();
        var h = word_embeddings.call(inputIds) + token_type_embeddings.call(tokenTypeIds) + position_embeddings.call(positionIds);
        h = nn.functional.dropout(LayerNorm.call(h), _dropout, training);
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>BertSelfAttention</c>: <c>query</c>, <c>key</c>, <c>value</c>; bidirectional, padding-masked keys.</summary>
public sealed class BertSelfAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    public nn.Module<Tensor, Tensor> query;
    public nn.Module<Tensor, Tensor> key;
    public nn.Module<Tensor, Tensor> value;

    private readonly int _heads;
    private readonly int _headDim;
    private readonly double _dropout;

    public BertSelfAttention(BertConfig c, Device? device, ScalarType dtype) : base("BertSelfAttention")
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.HeadDim;
        _dropout = c.AttentionDropout;
        query = nn.Linear(c.HiddenSize, c.HiddenSize, true, device, dtype);
        key = nn.Linear(c.HiddenSize, c.HiddenSize, true, device, dtype);
        value = nn.Linear(c.HiddenSize, c.HiddenSize, true, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? mask)
    {
        using var scope = torch.NewDisposeScope();
        var batch = hidden.shape[0];
        var length = hidden.shape[1];
        var q = query.call(hidden).view(batch, length, _heads, _headDim).transpose(1, 2);
        var k = key.call(hidden).view(batch, length, _heads, _headDim).transpose(1, 2);
        var v = value.call(hidden).view(batch, length, _heads, _headDim).transpose(1, 2);
        var attended = nn.functional.scaled_dot_product_attention(q, k, v, mask, training ? _dropout : 0.0);
        return attended.transpose(1, 2).reshape(batch, length, (long)_heads * _headDim).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>BertSelfOutput</c> and <c>BertOutput</c>: <c>LayerNorm(dropout(dense(x)) + residual)</c> (post-LN).</summary>
public sealed class BertResidualOutput : nn.Module<Tensor, Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> dense;
    public nn.Module<Tensor, Tensor> LayerNorm;

    private readonly double _dropout;

    public BertResidualOutput(long inFeatures, BertConfig c, Device? device, ScalarType dtype) : base("BertOutput")
    {
        dense = nn.Linear(inFeatures, c.HiddenSize, true, device, dtype);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device, dtype: dtype);
        _dropout = c.HiddenDropout;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor residual)
    {
        using var scope = torch.NewDisposeScope();
        var h = nn.functional.dropout(dense.call(x), _dropout, training);
        return LayerNorm.call(h + residual).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>BertAttention</c>: <c>self</c> then <c>output</c>.</summary>
public sealed class BertAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    public BertSelfAttention self;
    public BertResidualOutput output;

    public BertAttention(BertConfig c, Device? device, ScalarType dtype) : base("BertAttention")
    {
        self = new BertSelfAttention(c, device, dtype);
        output = new BertResidualOutput(c.HiddenSize, c, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? mask)
    {
        using var scope = torch.NewDisposeScope();
        return output.call(self.call(hidden, mask), hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>BertIntermediate</c>: <c>act(dense(x))</c>.</summary>
public sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> dense;

    private readonly Func<Tensor, Tensor> _act;

    public BertIntermediate(BertConfig c, ModelConfig source, Device? device, ScalarType dtype) : base("BertIntermediate")
    {
        dense = nn.Linear(c.HiddenSize, c.IntermediateSize, true, device, dtype);
        _act = Activations.Get(c.HiddenAct, "hidden_act", source.Source);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return _act(dense.call(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>BertLayer</c>: <c>attention</c>, <c>intermediate</c>, <c>output</c>.</summary>
public sealed class BertLayer : nn.Module<Tensor, Tensor?, Tensor>
{
    public BertAttention attention;
    public BertIntermediate intermediate;
    public BertResidualOutput output;

    public BertLayer(BertConfig c, ModelConfig source, Device? device, ScalarType dtype) : base("BertLayer")
    {
        attention = new BertAttention(c, device, dtype);
        intermediate = new BertIntermediate(c, source, device, dtype);
        output = new BertResidualOutput(c.IntermediateSize, c, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? mask)
    {
        using var scope = torch.NewDisposeScope();
        var attended = attention.call(hidden, mask);
        return output.call(intermediate.call(attended), attended).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>BertEncoder</c>: the stack <c>layer</c>.</summary>
public sealed class BertEncoder : nn.Module<Tensor, Tensor?, Tensor>, ICheckpointedStack
{
    public ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig c, ModelConfig source, Device? device, ScalarType dtype) : base("BertEncoder")
    {
        layer = new ModuleList<BertLayer>(
            Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new BertLayer(c, source, device, dtype)).ToArray());
        RegisterComponents();
    }

    /// <summary>Recompute each layer in the backward instead of keeping its activations (see <see cref="Checkpointing"/>).</summary>
    public bool GradientCheckpointing { get; set; }

    public override Tensor forward(Tensor hidden, Tensor? mask)
    {
        using var scope = torch.NewDisposeScope();
        var h = hidden;
        var checkpoint = Checkpointing.IsActive(GradientCheckpointing, training, null);
        foreach (var block in layer)
        {
            h = checkpoint ? Checkpointing.Run(block, xs => block.call(xs[0]!, xs[1]), h, mask) : block.call(h, mask);
        }
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>BertPooler</c>: <c>tanh(dense(h[:, 0]))</c>, the [CLS] state.</summary>
public sealed class BertPooler : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> dense;

    public BertPooler(BertConfig c, Device? device, ScalarType dtype) : base("BertPooler")
    {
        dense = nn.Linear(c.HiddenSize, c.HiddenSize, true, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = torch.NewDisposeScope();
        return torch.tanh(dense.call(hidden.select(1, 0))).MoveToOuterDisposeScope();
    }
}
