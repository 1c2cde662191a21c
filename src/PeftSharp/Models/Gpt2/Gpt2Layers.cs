using PeftSharp.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Gpt2;

/// <summary>What every GPT-2 block of one forward shares: the additive causal + padding mask and the cache.</summary>
public sealed record Gpt2Context(Tensor? Mask, KvCache? Cache);

/// <summary>
/// transformers' <c>GPT2Attention</c>: <c>c_attn</c> (Conv1D, <c>[n_embd, 3·n_embd]</c>, output q|k|v) and
/// <c>c_proj</c> (Conv1D); scores scaled by <c>head_dim^-0.5</c> when <c>scale_attn_weights</c>, and further by
/// <c>1/(layer+1)</c> when <c>scale_attn_by_inverse_layer_idx</c>.
/// </summary>
public sealed class Gpt2Attention : nn.Module<Tensor, Gpt2Context, Tensor>
{
    public nn.Module<Tensor, Tensor> c_attn;
    public nn.Module<Tensor, Tensor> c_proj;

    private readonly Gpt2Config _config;
    private readonly int _layerIndex;

    public Gpt2Attention(Gpt2Config c, int layerIndex, Device? device, ScalarType dtype) : base("GPT2Attention")
    {
        _config = c;
        _layerIndex = layerIndex;
        c_attn = new Conv1D(c.HiddenSize, 3L * c.HiddenSize, device, dtype);
        c_proj = new Conv1D(c.HiddenSize, c.HiddenSize, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Gpt2Context ctx)
    {
        using var scope = torch.NewDisposeScope();
        var batch = hidden.shape[0];
        var length = hidden.shape[1];
        var heads = _config.NumHeads;
        var headDim = _config.HeadDim;
        var qkv = c_attn.call(hidden).split(_config.HiddenSize, 2);
        var q = qkv[0].view(batch, length, heads, headDim).transpose(1, 2);
        var k = qkv[1].view(batch, length, heads, headDim).transpose(1, 2);
        var v = qkv[2].view(batch, length, heads, headDim).transpose(1, 2);
        if (ctx.Cache is not null)
        {
            (k, v) = ctx.Cache.Append(_layerIndex, k, v);
        }
        // SDPA always divides by sqrt(head_dim); fold GPT-2's other scalings into q.
        if (!_config.ScaleAttnWeights)
        {
            q = q * Math.Sqrt(headDim);
        }
        if (_config.ScaleAttnByInverseLayerIdx)
        {
            q = q / (_layerIndex + 1.0);
        }
        var dropout = training ? _config.AttnDropout : 0.0;
        var attended = nn.functional.scaled_dot_product_attention(q, k, v, ctx.Mask, dropout);
        var merged = attended.transpose(1, 2).reshape(batch, length, _config.HiddenSize);
        var output = nn.functional.dropout(c_proj.call(merged), _config.ResidDropout, training);
        return output.MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>GPT2MLP</c>: <c>c_proj(act(c_fc(x)))</c>, both Conv1D.</summary>
public sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> c_fc;
    public nn.Module<Tensor, Tensor> c_proj;

    private readonly Func<Tensor, Tensor> _act;
    private readonly double _dropout;

    public Gpt2Mlp(Gpt2Config c, ModelConfig source, Device? device, ScalarType dtype) : base("GPT2MLP")
    {
        c_fc = new Conv1D(c.HiddenSize, c.InnerSize, device, dtype);
        c_proj = new Conv1D(c.InnerSize, c.HiddenSize, device, dtype);
        _act = Activations.Get(c.Activation, "activation_function", source.Source);
        _dropout = c.ResidDropout;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = c_proj.call(_act(c_fc.call(x)));
        return nn.functional.dropout(h, _dropout, training).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>GPT2Block</c>: pre-LayerNorm attention and MLP with residuals.</summary>
public sealed class Gpt2Block : nn.Module<Tensor, Gpt2Context, Tensor>
{
    public nn.Module<Tensor, Tensor> ln_1;
    public Gpt2Attention attn;
    public nn.Module<Tensor, Tensor> ln_2;
    public Gpt2Mlp mlp;

    public Gpt2Block(Gpt2Config c, ModelConfig source, int layerIndex, Device? device, ScalarType dtype) : base("GPT2Block")
    {
        ln_1 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device, dtype: dtype);
        attn = new Gpt2Attention(c, layerIndex, device, dtype);
        ln_2 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device, dtype: dtype);
        mlp = new Gpt2Mlp(c, source, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Gpt2Context ctx)
    {
        using var scope = torch.NewDisposeScope();
        var h = hidden + attn.call(ln_1.call(hidden), ctx);
        h = h + mlp.call(ln_2.call(h));
        return h.MoveToOuterDisposeScope();
    }
}
