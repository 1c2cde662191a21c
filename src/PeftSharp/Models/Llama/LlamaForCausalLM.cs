using PeftSharp.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Llama;

/// <summary>
/// transformers' <c>LlamaForCausalLM</c>: <c>model</c> (<see cref="LlamaModel"/>) and <c>lm_head</c>
/// (<c>[vocab, hidden]</c>, no bias; with <c>tie_word_embeddings</c> it is <c>model.embed_tokens.weight</c> and is not
/// stored). Logits <c>[B, T, vocab]</c> for every position. <see cref="Qwen2ForCausalLM"/> and
/// <see cref="MistralForCausalLM"/> share this implementation.
/// </summary>
public class LlamaForCausalLM : PretrainedModel
{
    public LlamaModel model;
    public nn.Module<Tensor, Tensor> lm_head;

    private readonly string _architecture;

    /// <summary>Builds the model from <paramref name="config"/> with initial weights (load a checkpoint through <see cref="AutoModel"/>).</summary>
    public LlamaForCausalLM(ModelConfig config, ModelLoadOptions? options = null)
        : this(config, DecoderFamily.Llama, nameof(LlamaForCausalLM), options)
    {
    }

    protected LlamaForCausalLM(ModelConfig config, DecoderFamily family, string architecture, ModelLoadOptions? options)
        : base(architecture, config)
    {
        options ??= new ModelLoadOptions();
        _architecture = architecture;
        TypedConfig = LlamaConfig.From(config, family);
        model = new LlamaModel(TypedConfig, config, architecture, options.Device, options.DType);
        lm_head = TypedConfig.TieWordEmbeddings
            ? new TiedLmHead(model.Embedding)
            : nn.Linear(TypedConfig.HiddenSize, TypedConfig.VocabSize, false, options.Device, options.DType);
        RegisterComponents();
    }

    /// <summary>The typed config.</summary>
    public LlamaConfig TypedConfig { get; }

    public override ModelTask Task => ModelTask.CausalLM;

    public override string Architecture => _architecture;

    public override IReadOnlyList<string> OutputHeadNames { get; } = ["lm_head"];

    public override int NumLayers => TypedConfig.NumHiddenLayers;

    protected internal override string BaseModelPrefix => "model";

    protected internal override bool IsIgnorableCheckpointKey(string key) =>
        key.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
        || (TypedConfig.TieWordEmbeddings && key == "lm_head.weight");

    public override ModelOutput forward(ModelInput input)
    {
        using var scope = torch.NewDisposeScope();
        var hidden = model.call(input);
        var logits = lm_head.call(hidden);
        return new ModelOutput(logits.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }
}

/// <summary>transformers' <c>Qwen2ForCausalLM</c>: the Llama decoder with biased q/k/v and an unbiased o_proj.</summary>
public sealed class Qwen2ForCausalLM : LlamaForCausalLM
{
    public Qwen2ForCausalLM(ModelConfig config, ModelLoadOptions? options = null)
        : base(config, DecoderFamily.Qwen2, nameof(Qwen2ForCausalLM), options)
    {
    }
}

/// <summary>
/// transformers' <c>MistralForCausalLM</c>: the Llama decoder without biases; every layer attends to the last
/// <c>sliding_window</c> positions only (when the config sets one).
/// </summary>
public sealed class MistralForCausalLM : LlamaForCausalLM
{
    public MistralForCausalLM(ModelConfig config, ModelLoadOptions? options = null)
        : base(config, DecoderFamily.Mistral, nameof(MistralForCausalLM), options)
    {
    }
}
