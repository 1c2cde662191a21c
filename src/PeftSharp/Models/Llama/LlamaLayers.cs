using PeftSharp.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Llama;

/// <summary>What every decoder layer of one forward shares: rotary cos/sin <c>[B, 1, T, D]</c>, the additive mask, the cache.</summary>
public sealed record DecoderContext(Tensor Cos, Tensor Sin, Tensor? Mask, KvCache? Cache);

/// <summary>transformers' <c>LlamaMLP</c>: <c>down_proj(act(gate_proj(x)) · up_proj(x))</c>.</summary>
public sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> gate_proj;
    public nn.Module<Tensor, Tensor> up_proj;
    public nn.Module<Tensor, Tensor> down_proj;

    private readonly Func<Tensor, Tensor> _act;

    public LlamaMlp(LlamaConfig c, ModelConfig source, Device? device, ScalarType dtype) : base("LlamaMLP")
    {
        gate_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, c.MlpBias, device, dtype);
        up_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, c.MlpBias, device, dtype);
        down_proj = nn.Linear(c.IntermediateSize, c.HiddenSize, c.MlpBias, device, dtype);
        _act = Activations.Get(c.HiddenAct, "hidden_act", source.Source);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = _act(gate_proj.call(x)) * up_proj.call(x);
        return down_proj.call(h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers' <c>LlamaAttention</c> (also Qwen2's and Mistral's): rotary q/k, grouped-query attention by repeating
/// the <c>num_key_value_heads</c> K/V heads, fused <c>scaled_dot_product_attention</c> with scale <c>head_dim^-0.5</c>.
/// </summary>
public sealed class LlamaAttention : nn.Module<Tensor, DecoderContext, Tensor>
{
    public nn.Module<Tensor, Tensor> q_proj;
    public nn.Module<Tensor, Tensor> k_proj;
    public nn.Module<Tensor, Tensor> v_proj;
    public nn.Module<Tensor, Tensor> o_proj;

    private readonly int _layerIndex;
    private readonly int _heads;
    private readonly int _kvHeads;
    private readonly int _headDim;

    public LlamaAttention(LlamaConfig c, int layerIndex, Device? device, ScalarType dtype) : base("LlamaAttention")
    {
        _layerIndex = layerIndex;
        _heads = c.NumAttentionHeads;
        _kvHeads = c.NumKeyValueHeads;
        _headDim = c.HeadDim;
        q_proj = nn.Linear(c.HiddenSize, (long)_heads * _headDim, c.QkvBias, device, dtype);
        k_proj = nn.Linear(c.HiddenSize, (long)_kvHeads * _headDim, c.QkvBias, device, dtype);
        v_proj = nn.Linear(c.HiddenSize, (long)_kvHeads * _headDim, c.QkvBias, device, dtype);
        o_proj = nn.Linear((long)_heads * _headDim, c.HiddenSize, c.OutputBias, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, DecoderContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        var batch = hidden.shape[0];
        var length = hidden.shape[1];
        var q = q_proj.call(hidden).view(batch, length, _heads, _headDim).transpose(1, 2);
        var k = k_proj.call(hidden).view(batch, length, _kvHeads, _headDim).transpose(1, 2);
        var v = v_proj.call(hidden).view(batch, length, _kvHeads, _headDim).transpose(1, 2);
        q = RotaryEmbedding.Apply(q, ctx.Cos, ctx.Sin);
        k = RotaryEmbedding.Apply(k, ctx.Cos, ctx.Sin);
        if (ctx.Cache is not null)
        {
            (k, v) = ctx.Cache.Append(_layerIndex, k, v);
        }
        var groups = _heads / _kvHeads;
        if (groups > 1)
        {
            k = k.repeat_interleave(groups, dim: 1);
            v = v.repeat_interleave(groups, dim: 1);
        }
        var attended = nn.functional.scaled_dot_product_attention(q, k, v, ctx.Mask);
        var merged = attended.transpose(1, 2).reshape(batch, length, (long)_heads * _headDim);
        return o_proj.call(merged).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' <c>LlamaDecoderLayer</c>: pre-RMSNorm attention and MLP, each with a residual.</summary>
public sealed class LlamaDecoderLayer : nn.Module<Tensor, DecoderContext, Tensor>
{
    public LlamaAttention self_attn;
    public LlamaMlp mlp;
    public nn.Module<Tensor, Tensor> input_layernorm;
    public nn.Module<Tensor, Tensor> post_attention_layernorm;

    public LlamaDecoderLayer(LlamaConfig c, ModelConfig source, int layerIndex, Device? device, ScalarType dtype) : base("LlamaDecoderLayer")
    {
        self_attn = new LlamaAttention(c, layerIndex, device, dtype);
        mlp = new LlamaMlp(c, source, device, dtype);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, DecoderContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        var h = hidden + self_attn.call(input_layernorm.call(hidden), ctx);
        h = h + mlp.call(post_attention_layernorm.call(h));
        return h.MoveToOuterDisposeScope();
    }
}
