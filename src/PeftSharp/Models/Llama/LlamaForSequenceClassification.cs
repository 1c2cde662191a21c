using PeftSharp.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Llama;

/// <summary>
/// transformers' <c>LlamaForSequenceClassification</c>: <c>model</c> and <c>score</c> (<c>[num_labels, hidden]</c>, no
/// bias) read at each row's last non-pad token (<see cref="Pooling.LastToken"/>: first <c>pad_token_id</c>
/// position − 1, as transformers). Logits <c>[B, num_labels]</c>. Qwen2 and Mistral variants share it.
/// </summary>
public class LlamaForSequenceClassification : PretrainedModel
{
    public LlamaModel model;
    public nn.Module<Tensor, Tensor> score;

    private readonly string _architecture;

    /// <summary>Builds the model from <paramref name="config"/> with initial weights.</summary>
    public LlamaForSequenceClassification(ModelConfig config, ModelLoadOptions? options = null)
        : this(config, DecoderFamily.Llama, nameof(LlamaForSequenceClassification), options)
    {
    }

    protected LlamaForSequenceClassification(ModelConfig config, DecoderFamily family, string architecture, ModelLoadOptions? options)
        : base(architecture, config)
    {
        options ??= new ModelLoadOptions();
        _architecture = architecture;
        TypedConfig = LlamaConfig.From(config, family);
        NumLabels = options.NumLabels ?? config.NumLabels;
        model = new LlamaModel(TypedConfig, config, architecture, options.Device, options.DType);
        score = nn.Linear(TypedConfig.HiddenSize, NumLabels, false, options.Device, options.DType);
        RegisterComponents();
    }

    /// <summary>The typed config.</summary>
    public LlamaConfig TypedConfig { get; }

    /// <summary>Rows of <c>score</c>.</summary>
    public int NumLabels { get; }

    public override ModelTask Task => ModelTask.SequenceClassification;

    public override string Architecture => _architecture;

    public override IReadOnlyList<string> OutputHeadNames { get; } = ["score"];

    public override int NumLayers => TypedConfig.NumHiddenLayers;

    protected internal override string BaseModelPrefix => "model";

    protected internal override bool IsIgnorableCheckpointKey(string key) =>
        key.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    public override ModelOutput forward(ModelInput input)
    {
        using var scope = torch.NewDisposeScope();
        var hidden = model.call(input);
        var pooled = Pooling.LastToken(hidden, input.InputIds, TypedConfig.PadTokenId, _architecture);
        var logits = score.call(pooled);
        return new ModelOutput(logits.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }
}

/// <summary>transformers' <c>Qwen2ForSequenceClassification</c>.</summary>
public sealed class Qwen2ForSequenceClassification : LlamaForSequenceClassification
{
    public Qwen2ForSequenceClassification(ModelConfig config, ModelLoadOptions? options = null)
        : base(config, DecoderFamily.Qwen2, nameof(Qwen2ForSequenceClassification), options)
    {
    }
}

/// <summary>transformers' <c>MistralForSequenceClassification</c>.</summary>
public sealed class MistralForSequenceClassification : LlamaForSequenceClassification
{
    public MistralForSequenceClassification(ModelConfig config, ModelLoadOptions? options = null)
        : base(config, DecoderFamily.Mistral, nameof(MistralForSequenceClassification), options)
    {
    }
}
